"""The inbox's index of pending items by sender goes (bot/services/inbox.py: _IN_ORDER).

A claim takes the oldest claimable pending items, so an earlier pending item of the same
sender outside the claim can only be one leased or locked by another worker: few, and
found through the pending index from its start. The sender index answered the same
question per candidate, and cost every webhook's insert and every processed item's update
a random page: on SQLite, 40 µs of CPU per stored webhook with it and 25 µs without, in a
backlog of 30,000.
"""

from tortoise import migrations
from tortoise.migrations import operations as ops


class Migration(migrations.Migration):
    dependencies = [('models', '0014_queue_table_autovacuum')]

    initial = False

    operations = [
        ops.RemoveIndex(model_name='InboxItem', name='inbox_item_pending_sender'),
    ]
