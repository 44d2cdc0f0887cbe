from tortoise import migrations
from tortoise.migrations import operations as ops
from tortoise import fields
from tortoise.indexes import Index

class Migration(migrations.Migration):
    dependencies = [('models', '0001_initial')]

    initial = False

    operations = [
        ops.AddIndex(
            model_name='Identity',
            index=Index(fields=['member_id']),
        ),
        ops.AddField(
            model_name='Member',
            name='last_digest_on',
            field=fields.DateField(null=True),
        ),
        ops.AddField(
            model_name='Member',
            name='transport',
            field=fields.CharField(default='testchat', max_length=16),
        ),
        ops.AddIndex(
            model_name='OutboxItem',
            index=Index(fields=['member_id', 'status']),
        ),
    ]
