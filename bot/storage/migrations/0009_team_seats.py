from tortoise import migrations
from tortoise.migrations import operations as ops
from tortoise.fields.base import OnDelete
from tortoise import fields

class Migration(migrations.Migration):
    dependencies = [('models', '0008_carried_bans')]

    initial = False

    operations = [
        ops.CreateModel(
            name='TeamSeat',
            fields=[
                ('id', fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('team', fields.ForeignKeyField('models.TeamGroup', source_field='team_id', db_constraint=True, to_field='id', related_name='seats', on_delete=OnDelete.CASCADE)),
                ('member', fields.ForeignKeyField('models.Member', source_field='member_id', db_constraint=True, to_field='id', related_name='team_seats', on_delete=OnDelete.CASCADE)),
                ('join_request_id', fields.CharField(max_length=128)),
                ('status', fields.CharField(default='approved', max_length=12)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'team_group_seat', 'app': 'models', 'unique_together': (('team', 'join_request_id'),), 'pk_attr': 'id', 'table_description': 'A member the bot approved into a team group, until they leave or are removed.'},
            bases=['Model'],
        ),
        ops.AddField(
            model_name='TeamGroup',
            name='requested_by_id',
            field=fields.IntField(null=True),
        ),
        ops.RemoveField(model_name='TeamGroup', name='approved'),
    ]
