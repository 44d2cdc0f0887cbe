from tortoise import migrations
from tortoise.migrations import operations as ops
import functools
from json import dumps, loads
from tortoise import fields

class Migration(migrations.Migration):
    dependencies = [('models', '0007_pacing_slots')]

    initial = False

    operations = [
        ops.CreateModel(
            name='CarriedBan',
            fields=[
                ('id', fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('address_hash', fields.CharField(db_index=True, max_length=64)),
                ('group_ids', fields.JSONField(encoder=functools.partial(dumps, separators=(',', ':')), decoder=loads)),
                ('until', fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'mod_carried_ban', 'app': 'models', 'pk_attr': 'id', 'table_description': "A ban that outlives the banned member's own erasure (/forgetme)."},
            bases=['Model'],
        ),
    ]
