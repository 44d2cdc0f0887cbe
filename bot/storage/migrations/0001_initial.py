import functools
from json import dumps, loads

from tortoise import fields, migrations
from tortoise.fields.base import OnDelete
from tortoise.indexes import Index
from tortoise.migrations import operations as ops


class Migration(migrations.Migration):
    initial = True

    operations = [
        ops.CreateModel(
            name='ErasureStat',
            fields=[
                ('id', fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('day', fields.DateField()),
                ('erased', fields.IntField(default=0)),
            ],
            options={'table': 'erasure_stat', 'app': 'models', 'pk_attr': 'id', 'table_description': 'Anonymous counts kept after erasure (no link to anyone).'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='Group',
            fields=[
                ('id', fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('code', fields.CharField(unique=True, max_length=32)),
                ('name', fields.CharField(max_length=120)),
                ('area', fields.CharField(default='', max_length=120)),
                ('description', fields.TextField(default='', unique=False)),
                ('timezone', fields.CharField(max_length=64)),
                ('settings', fields.JSONField(default=dict, encoder=functools.partial(dumps, separators=(',', ':')), decoder=loads)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'local_group', 'app': 'models', 'pk_attr': 'id'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='InboxItem',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('transport', fields.CharField(max_length=16)),
                ('event_key', fields.CharField(max_length=160)),
                ('kind', fields.CharField(max_length=16)),
                ('payload', fields.JSONField(null=True, encoder=functools.partial(dumps, separators=(',', ':')), decoder=loads)),
                ('status', fields.CharField(default='pending', db_index=True, max_length=12)),
                ('attempts', fields.IntField(default=0)),
                ('claimed_until', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('received_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ('processed_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('error', fields.CharField(null=True, max_length=200)),
            ],
            options={'table': 'inbox_item', 'app': 'models', 'unique_together': (('transport', 'event_key'),), 'pk_attr': 'id', 'table_description': 'Every accepted inbound event. A unique (transport, event_key) makes redelivery harmless.'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='Member',
            fields=[
                ('id', fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('status', fields.CharField(default='pending', db_index=True, max_length=16)),
                ('handle', fields.CharField(null=True, unique=True, max_length=40)),
                ('display_name_enc', fields.TextField(null=True, unique=False)),
                ('notice_version', fields.CharField(max_length=16)),
                ('notice_sent_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('timezone', fields.CharField(null=True, max_length=64)),
                ('quiet_hours', fields.CharField(null=True, max_length=16)),
                ('daily_cap', fields.IntField(null=True)),
                ('paused_until', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('digest', fields.CharField(default='off', max_length=8)),
                ('marketing_ok', fields.BooleanField(default=True)),
                ('current_group_id', fields.IntField(null=True)),
                ('flow', fields.JSONField(null=True, encoder=functools.partial(dumps, separators=(',', ':')), decoder=loads)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'member', 'app': 'models', 'pk_attr': 'id'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='ConsentRecord',
            fields=[
                ('id', fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('member', fields.ForeignKeyField('models.Member', source_field='member_id', db_constraint=True, to_field='id', related_name='consents', on_delete=OnDelete.CASCADE)),
                ('at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ('action', fields.CharField(max_length=24)),
                ('channel', fields.CharField(max_length=16)),
                ('method', fields.CharField(max_length=64)),
                ('notice_version', fields.CharField(max_length=16)),
            ],
            options={'table': 'consent_record', 'app': 'models', 'pk_attr': 'id', 'table_description': 'The consent ledger: every grant and withdrawal, never deleted while the member exists.'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='Identity',
            fields=[
                ('id', fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('member', fields.ForeignKeyField('models.Member', source_field='member_id', db_constraint=True, to_field='id', related_name='identities', on_delete=OnDelete.CASCADE)),
                ('transport', fields.CharField(max_length=16)),
                ('kind', fields.CharField(default='user', max_length=16)),
                ('address_hash', fields.CharField(max_length=64)),
                ('address_enc', fields.TextField(unique=False)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'identity', 'app': 'models', 'unique_together': (('transport', 'address_hash'),), 'pk_attr': 'id', 'table_description': 'One address of a member on one transport (a member may have several).'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='Membership',
            fields=[
                ('id', fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('member', fields.ForeignKeyField('models.Member', source_field='member_id', db_constraint=True, to_field='id', related_name='memberships', on_delete=OnDelete.CASCADE)),
                ('group', fields.ForeignKeyField('models.Group', source_field='group_id', db_constraint=True, to_field='id', related_name='memberships', on_delete=OnDelete.CASCADE)),
                ('role', fields.CharField(default='member', max_length=12)),
                ('status', fields.CharField(default='active', max_length=12)),
                ('muted', fields.BooleanField(default=False)),
                ('joined_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ('left_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'membership', 'app': 'models', 'unique_together': (('member', 'group'),), 'indexes': [Index(fields=['group_id', 'status'])], 'pk_attr': 'id'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='OutboxItem',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('member', fields.ForeignKeyField('models.Member', source_field='member_id', null=True, db_constraint=True, to_field='id', related_name='outbox', on_delete=OnDelete.CASCADE)),
                ('transport', fields.CharField(max_length=16)),
                ('room', fields.CharField(null=True, max_length=128)),
                ('kind', fields.CharField(max_length=16)),
                ('command', fields.CharField(null=True, max_length=32)),
                ('group_id', fields.IntField(null=True)),
                ('text', fields.TextField(unique=False)),
                ('extra', fields.JSONField(null=True, encoder=functools.partial(dumps, separators=(',', ':')), decoder=loads)),
                ('priority', fields.SmallIntField(default=0)),
                ('status', fields.CharField(default='queued', max_length=12)),
                ('not_before', fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ('attempts', fields.IntField(default=0)),
                ('claimed_until', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('provider_message_id', fields.CharField(null=True, db_index=True, max_length=128)),
                ('error', fields.CharField(null=True, max_length=200)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ('sent_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'outbox_item', 'app': 'models', 'indexes': [Index(fields=['status', 'priority', 'not_before'])], 'pk_attr': 'id', 'table_description': 'A message to send. Written in the same transaction as the state it follows from.'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='RoomLink',
            fields=[
                ('id', fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('group', fields.ForeignKeyField('models.Group', source_field='group_id', db_constraint=True, to_field='id', related_name='rooms', on_delete=OnDelete.CASCADE)),
                ('transport', fields.CharField(max_length=16)),
                ('room', fields.CharField(max_length=128)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'room_link', 'app': 'models', 'unique_together': (('transport', 'room'),), 'pk_attr': 'id', 'table_description': 'A real group room (test chat room, Telegram group) linked to a group.'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='Suppression',
            fields=[
                ('id', fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('address_hash', fields.CharField(unique=True, max_length=64)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'suppression', 'app': 'models', 'pk_attr': 'id', 'table_description': 'Keyed hashes of addresses that said STOP, kept after /forgetme so they stay stopped.'},
            bases=['Model'],
        ),
    ]
