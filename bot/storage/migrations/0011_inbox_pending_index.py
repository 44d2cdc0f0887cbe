from tortoise import migrations
from tortoise.indexes import PartialIndex
from tortoise.migrations import operations as ops


class Migration(migrations.Migration):
    dependencies = [('models', '0010_event_end_times')]

    initial = False

    operations = [
        ops.AddIndex(
            model_name='InboxItem',
            index=PartialIndex(fields=('id',), name='inbox_item_pending',
                               condition={'status': 'pending'}),
        ),
    ]
