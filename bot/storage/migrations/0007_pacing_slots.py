from tortoise import migrations
from tortoise.migrations import operations as ops
from tortoise import fields

class Migration(migrations.Migration):
    dependencies = [('models', '0006_team_groups')]

    initial = False

    operations = [
        ops.CreateModel(
            name='PacingSlot',
            fields=[
                ('transport', fields.CharField(primary_key=True, unique=True, db_index=True, max_length=16)),
                ('next_at', fields.FloatField()),
            ],
            options={'table': 'pacing_slot', 'app': 'models', 'pk_attr': 'transport', 'table_description': 'The next free send slot per transport, shared by every worker on one database.'},
            bases=['Model'],
        ),
    ]
