from tortoise import migrations
from tortoise.migrations import operations as ops
from tortoise.fields.base import OnDelete
from tortoise import fields
from tortoise.indexes import Index

class Migration(migrations.Migration):
    dependencies = [('models', '0012_inbox_sender_order')]

    initial = False

    operations = [
        ops.CreateModel(
            name='FloodMark',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('group', fields.ForeignKeyField('models.Group', source_field='group_id', db_constraint=True, to_field='id', related_name='flood_marks', on_delete=OnDelete.CASCADE)),
                ('member', fields.ForeignKeyField('models.Member', source_field='member_id', db_constraint=True, to_field='id', related_name='flood_marks', on_delete=OnDelete.CASCADE)),
                ('at', fields.DatetimeField(db_index=True, auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'mod_flood', 'app': 'models', 'indexes': [Index(fields=['group_id', 'member_id', 'at'])], 'pk_attr': 'id', 'table_description': 'When a member posted in a group, for the flood rule (at most N posts in T seconds).'},
            bases=['Model'],
        ),
    ]
