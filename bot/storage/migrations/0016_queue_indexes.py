"""The delivery claim reads due rows in its own order; the inbox's status index goes.

- `outbox_item_due`: queued rows by (priority, not_before, id), the order a delivery
  round claims them (bot/services/outbox.py: _DUE). The claim stops after the rows it
  takes; before, it read every queued row and sorted them: 14 ms a claim on PostgreSQL
  with 10,000 replies queued, and linear in the backlog.
- The index on `inbox_item.status` served no query: the claim and the pending count read
  `inbox_item_pending`. It cost every stored webhook an index entry, and every claim and
  every processed item another.
"""

from typing import Any

from tortoise import fields, migrations
from tortoise.indexes import PartialIndex
from tortoise.migrations import operations as ops

STATUS_INDEX = "idx_inbox_item_status_15f6d1"


class DropStatusIndex(ops.AlterField):
    """`status` without db_index, by dropping its index only. tortoise's own AlterField
    rebuilds a SQLite table to change a column, and the rebuilt inbox_item had lost its
    unique (transport, event_key) and its pending index."""

    async def database_forward(self, app_label: str, old_state: Any, new_state: Any,
                               state_editor: Any = None) -> None:
        if state_editor:
            await state_editor.client.execute_script(f'DROP INDEX IF EXISTS "{STATUS_INDEX}"')

    async def database_backward(self, app_label: str, old_state: Any, new_state: Any,
                                state_editor: Any = None) -> None:
        if state_editor:
            await state_editor.client.execute_script(
                f'CREATE INDEX IF NOT EXISTS "{STATUS_INDEX}" ON "inbox_item" ("status")')


class Migration(migrations.Migration):
    dependencies = [('models', '0015_inbox_sender_index_dropped')]

    initial = False

    operations = [
        DropStatusIndex(
            model_name='InboxItem',
            name='status',
            field=fields.CharField(default='pending', max_length=12),
        ),
        ops.AddIndex(
            model_name='OutboxItem',
            index=PartialIndex(fields=['priority', 'not_before', 'id'], name='outbox_item_due',
                               condition={'status': 'queued'}),
        ),
    ]
