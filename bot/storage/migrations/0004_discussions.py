from tortoise import migrations
from tortoise.migrations import operations as ops
from tortoise.fields.base import OnDelete
from tortoise import fields
from tortoise.indexes import Index

class Migration(migrations.Migration):
    dependencies = [('models', '0003_events')]

    initial = False

    operations = [
        ops.CreateModel(
            name='Issue',
            fields=[
                ('id', fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('group', fields.ForeignKeyField('models.Group', source_field='group_id', db_constraint=True, to_field='id', related_name='issues', on_delete=OnDelete.CASCADE)),
                ('title', fields.CharField(max_length=120)),
                ('status', fields.CharField(default='open', max_length=12)),
                ('outcome', fields.TextField(null=True, unique=False)),
                ('created_by', fields.ForeignKeyField('models.Member', source_field='created_by_id', null=True, db_constraint=True, to_field='id', related_name='issues_created', on_delete=OnDelete.SET_NULL)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ('closed_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'discussion_issue', 'app': 'models', 'indexes': [Index(fields=['group_id', 'status'])], 'pk_attr': 'id', 'table_description': 'A topic a group discusses. Creator set NULL when they erase their data.'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='Comment',
            fields=[
                ('id', fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('issue', fields.ForeignKeyField('models.Issue', source_field='issue_id', db_constraint=True, to_field='id', related_name='comments', on_delete=OnDelete.CASCADE)),
                ('author', fields.ForeignKeyField('models.Member', source_field='author_id', null=True, db_constraint=True, to_field='id', related_name='comments', on_delete=OnDelete.SET_NULL)),
                ('text', fields.TextField(null=True, unique=False)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'discussion_comment', 'app': 'models', 'indexes': [Index(fields=['issue_id', 'id']), Index(fields=['author_id'])], 'pk_attr': 'id', 'table_description': "One member's comment on an issue. Text and author are NULL once the author erased it."},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='Follow',
            fields=[
                ('id', fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('issue', fields.ForeignKeyField('models.Issue', source_field='issue_id', db_constraint=True, to_field='id', related_name='follows', on_delete=OnDelete.CASCADE)),
                ('member', fields.ForeignKeyField('models.Member', source_field='member_id', db_constraint=True, to_field='id', related_name='follows', on_delete=OnDelete.CASCADE)),
                ('following', fields.BooleanField(default=True)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'discussion_follow', 'app': 'models', 'unique_together': (('issue', 'member'),), 'indexes': [Index(fields=['issue_id', 'following'])], 'pk_attr': 'id', 'table_description': "A member's choice to hear about an issue's comments, polls and outcome."},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='Poll',
            fields=[
                ('id', fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('issue', fields.ForeignKeyField('models.Issue', source_field='issue_id', db_constraint=True, to_field='id', related_name='polls', on_delete=OnDelete.CASCADE)),
                ('question', fields.CharField(max_length=200)),
                ('hidden', fields.BooleanField(default=False)),
                ('status', fields.CharField(default='open', max_length=12)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ('closed_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'discussion_poll', 'app': 'models', 'pk_attr': 'id', 'table_description': 'A question with fixed options, attached to an issue.'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='PollOption',
            fields=[
                ('id', fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('poll', fields.ForeignKeyField('models.Poll', source_field='poll_id', db_constraint=True, to_field='id', related_name='options', on_delete=OnDelete.CASCADE)),
                ('position', fields.SmallIntField()),
                ('text', fields.CharField(max_length=80)),
            ],
            options={'table': 'discussion_poll_option', 'app': 'models', 'unique_together': (('poll', 'position'),), 'pk_attr': 'id', 'table_description': 'One answer of a poll, numbered from 1 in the order the organizer wrote them.'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='Vote',
            fields=[
                ('id', fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('poll', fields.ForeignKeyField('models.Poll', source_field='poll_id', db_constraint=True, to_field='id', related_name='votes', on_delete=OnDelete.CASCADE)),
                ('option', fields.ForeignKeyField('models.PollOption', source_field='option_id', db_constraint=True, to_field='id', related_name='votes', on_delete=OnDelete.CASCADE)),
                ('member', fields.ForeignKeyField('models.Member', source_field='member_id', db_constraint=True, to_field='id', related_name='votes', on_delete=OnDelete.CASCADE)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ('updated_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'discussion_vote', 'app': 'models', 'unique_together': (('poll', 'member'),), 'indexes': [Index(fields=['member_id'])], 'pk_attr': 'id', 'table_description': "One member's current choice in a poll (one row per member, changed in place)."},
            bases=['Model'],
        ),
    ]
