from tortoise import fields, migrations
from tortoise.indexes import PartialIndex
from tortoise.migrations import operations as ops


class Migration(migrations.Migration):
    dependencies = [('models', '0011_inbox_pending_index')]

    initial = False

    operations = [
        ops.AddField(
            model_name='InboxItem',
            name='sender_key',
            field=fields.CharField(null=True, max_length=32),
        ),
        ops.AddIndex(
            model_name='InboxItem',
            index=PartialIndex(fields=('sender_key', 'id'), name='inbox_item_pending_sender',
                               condition={'status': 'pending'}),
        ),
    ]
