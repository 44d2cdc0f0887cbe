"""Team-group models: the WhatsApp group each local group's core team may have.
# Note: no semicolons in model docstrings. tortoise copies them into SQL comments and its
# SQLite migration runner splits statements on ";".

Nothing personal is kept here: the platform's group id, the subject the organizers
chose, and how many join requests the bot approved (WhatsApp caps a group at 8).
"""

from __future__ import annotations

from tortoise import fields
from tortoise.models import Model


class TeamGroup(Model):
    """A business-created WhatsApp group for one local group's core team."""

    id = fields.IntField(primary_key=True)
    group = fields.OneToOneField("models.Group", related_name="team_group",
                                 on_delete=fields.CASCADE)
    transport = fields.CharField(max_length=16, default="whatsapp")
    # The platform's id. NULL while the creation is pending (only a request id came back).
    platform_id = fields.CharField(max_length=128, null=True, unique=True)
    request_id = fields.CharField(max_length=128, null=True)
    subject = fields.CharField(max_length=128)
    status = fields.CharField(max_length=12, default="active")  # pending|active
    approved = fields.IntField(default=0)  # join requests this bot approved
    created_at = fields.DatetimeField()

    class Meta:
        table = "team_group"
