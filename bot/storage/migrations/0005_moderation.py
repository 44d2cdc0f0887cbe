from tortoise import migrations
from tortoise.migrations import operations as ops
import functools
from json import dumps, loads
from tortoise.fields.base import OnDelete
from tortoise import fields
from tortoise.indexes import Index

class Migration(migrations.Migration):
    dependencies = [('models', '0004_discussions')]

    initial = False

    operations = [
        ops.CreateModel(
            name='ModAction',
            fields=[
                ('id', fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('at', fields.DatetimeField(db_index=True, auto_now=False, auto_now_add=False)),
                ('group', fields.ForeignKeyField('models.Group', source_field='group_id', null=True, db_constraint=True, to_field='id', related_name='mod_actions', on_delete=OnDelete.SET_NULL)),
                ('scope', fields.JSONField(null=True, encoder=functools.partial(dumps, separators=(',', ':')), decoder=loads)),
                ('group_codes', fields.CharField(default='', max_length=400)),
                ('actor', fields.ForeignKeyField('models.Member', source_field='actor_id', null=True, db_constraint=True, to_field='id', related_name='mod_actions_taken', on_delete=OnDelete.SET_NULL)),
                ('actor_handle', fields.CharField(null=True, max_length=40)),
                ('target', fields.ForeignKeyField('models.Member', source_field='target_id', null=True, db_constraint=True, to_field='id', related_name='mod_actions_received', on_delete=OnDelete.SET_NULL)),
                ('target_handle', fields.CharField(null=True, max_length=40)),
                ('rule_id', fields.CharField(null=True, max_length=32)),
                ('action', fields.CharField(max_length=48)),
                ('reason', fields.CharField(null=True, max_length=300)),
                ('detail', fields.CharField(null=True, max_length=64)),
                ('until', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('shadow', fields.BooleanField(default=False)),
                ('source', fields.CharField(default='command', max_length=16)),
                ('undone_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'mod_action', 'app': 'models', 'indexes': [Index(fields=['group_id', 'id']), Index(fields=['target_id'])], 'pk_attr': 'id', 'table_description': 'One moderation action (the audit log). Never the message text. Kept for the retention.'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='ModAppeal',
            fields=[
                ('id', fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('action', fields.ForeignKeyField('models.ModAction', source_field='action_id', db_constraint=True, to_field='id', related_name='appeals', on_delete=OnDelete.CASCADE)),
                ('member', fields.ForeignKeyField('models.Member', source_field='member_id', db_constraint=True, to_field='id', related_name='mod_appeals', on_delete=OnDelete.CASCADE)),
                ('text_enc', fields.TextField(null=True, unique=False)),
                ('status', fields.CharField(default='open', max_length=12)),
                ('decided_by', fields.ForeignKeyField('models.Member', source_field='decided_by_id', null=True, db_constraint=True, to_field='id', related_name='appeals_decided', on_delete=OnDelete.SET_NULL)),
                ('note', fields.CharField(null=True, max_length=300)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ('decided_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'mod_appeal', 'app': 'models', 'indexes': [Index(fields=['status'])], 'pk_attr': 'id', 'table_description': "A member's appeal against an action taken against them, decided by another moderator."},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='ModBan',
            fields=[
                ('id', fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('member', fields.ForeignKeyField('models.Member', source_field='member_id', db_constraint=True, to_field='id', related_name='mod_bans', on_delete=OnDelete.CASCADE)),
                ('group_ids', fields.JSONField(encoder=functools.partial(dumps, separators=(',', ':')), decoder=loads)),
                ('previous', fields.JSONField(encoder=functools.partial(dumps, separators=(',', ':')), decoder=loads)),
                ('reason', fields.CharField(max_length=300)),
                ('until', fields.DatetimeField(db_index=True, auto_now=False, auto_now_add=False)),
                ('action', fields.ForeignKeyField('models.ModAction', source_field='action_id', null=True, db_constraint=True, to_field='id', related_name='bans', on_delete=OnDelete.SET_NULL)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ('lifted_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'mod_ban', 'app': 'models', 'indexes': [Index(fields=['member_id', 'lifted_at'])], 'pk_attr': 'id', 'table_description': 'A member shut out of every group sharing the ban list until `until`.'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='ModMute',
            fields=[
                ('id', fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('member', fields.ForeignKeyField('models.Member', source_field='member_id', db_constraint=True, to_field='id', related_name='mod_mutes', on_delete=OnDelete.CASCADE)),
                ('group', fields.ForeignKeyField('models.Group', source_field='group_id', db_constraint=True, to_field='id', related_name='mod_mutes', on_delete=OnDelete.CASCADE)),
                ('until', fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ('action', fields.ForeignKeyField('models.ModAction', source_field='action_id', null=True, db_constraint=True, to_field='id', related_name='mutes', on_delete=OnDelete.SET_NULL)),
                ('lifted_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'mod_mute', 'app': 'models', 'indexes': [Index(fields=['member_id', 'group_id', 'until'])], 'pk_attr': 'id', 'table_description': 'A member may not post to a group until `until` (or until lifted).'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='ModWarning',
            fields=[
                ('id', fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('member', fields.ForeignKeyField('models.Member', source_field='member_id', db_constraint=True, to_field='id', related_name='mod_warnings', on_delete=OnDelete.CASCADE)),
                ('group', fields.ForeignKeyField('models.Group', source_field='group_id', db_constraint=True, to_field='id', related_name='mod_warnings', on_delete=OnDelete.CASCADE)),
                ('rule_id', fields.CharField(max_length=32)),
                ('action', fields.ForeignKeyField('models.ModAction', source_field='action_id', null=True, db_constraint=True, to_field='id', related_name='warnings', on_delete=OnDelete.SET_NULL)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ('expires_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ('revoked', fields.BooleanField(default=False)),
            ],
            options={'table': 'mod_warning', 'app': 'models', 'indexes': [Index(fields=['member_id', 'group_id', 'expires_at'])], 'pk_attr': 'id', 'table_description': 'A strike against a member in a group. Counts toward the ladder until it expires.'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='RelayedPost',
            fields=[
                ('id', fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('group', fields.ForeignKeyField('models.Group', source_field='group_id', db_constraint=True, to_field='id', related_name='relayed_posts', on_delete=OnDelete.CASCADE)),
                ('author', fields.ForeignKeyField('models.Member', source_field='author_id', null=True, db_constraint=True, to_field='id', related_name='relayed_posts', on_delete=OnDelete.SET_NULL)),
                ('created_at', fields.DatetimeField(db_index=True, auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'mod_post', 'app': 'models', 'pk_attr': 'id', 'table_description': 'A post that passed moderation and was relayed, so it can be reported by its number.'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='ModReport',
            fields=[
                ('id', fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('group', fields.ForeignKeyField('models.Group', source_field='group_id', db_constraint=True, to_field='id', related_name='mod_reports', on_delete=OnDelete.CASCADE)),
                ('reporter', fields.ForeignKeyField('models.Member', source_field='reporter_id', null=True, db_constraint=True, to_field='id', related_name='reports_made', on_delete=OnDelete.SET_NULL)),
                ('target', fields.ForeignKeyField('models.Member', source_field='target_id', null=True, db_constraint=True, to_field='id', related_name='reports_about', on_delete=OnDelete.SET_NULL)),
                ('target_handle', fields.CharField(null=True, max_length=40)),
                ('post', fields.ForeignKeyField('models.RelayedPost', source_field='post_id', null=True, db_constraint=True, to_field='id', related_name='reports', on_delete=OnDelete.SET_NULL)),
                ('text_enc', fields.TextField(null=True, unique=False)),
                ('status', fields.CharField(default='open', max_length=12)),
                ('resolution', fields.CharField(null=True, max_length=48)),
                ('resolved_by', fields.ForeignKeyField('models.Member', source_field='resolved_by_id', null=True, db_constraint=True, to_field='id', related_name='reports_resolved', on_delete=OnDelete.SET_NULL)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ('resolved_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'mod_report', 'app': 'models', 'indexes': [Index(fields=['group_id', 'status'])], 'pk_attr': 'id', 'table_description': "A member's report to a group's moderators. The reporter is never shown to the reported."},
            bases=['Model'],
        ),
    ]
