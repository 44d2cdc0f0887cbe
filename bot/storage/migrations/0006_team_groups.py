from tortoise import migrations
from tortoise.migrations import operations as ops
from tortoise.fields.base import OnDelete
from tortoise import fields

class Migration(migrations.Migration):
    dependencies = [('models', '0005_moderation')]

    initial = False

    operations = [
        ops.CreateModel(
            name='TeamGroup',
            fields=[
                ('id', fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('group', fields.OneToOneField('models.Group', source_field='group_id', db_constraint=True, to_field='id', related_name='team_group', on_delete=OnDelete.CASCADE)),
                ('transport', fields.CharField(default='whatsapp', max_length=16)),
                ('platform_id', fields.CharField(null=True, unique=True, max_length=128)),
                ('request_id', fields.CharField(null=True, max_length=128)),
                ('subject', fields.CharField(max_length=128)),
                ('status', fields.CharField(default='active', max_length=12)),
                ('approved', fields.IntField(default=0)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'team_group', 'app': 'models', 'pk_attr': 'id', 'table_description': "A business-created WhatsApp group for one local group's core team."},
            bases=['Model'],
        ),
    ]
