"""Team-group models: the WhatsApp group each local group's core team may have.
# Note: no semicolons in model docstrings. tortoise copies them into SQL comments and its
# SQLite migration runner splits statements on ";".

Nothing personal is kept here: the platform's group id, the subject the organizers
chose, and which members the bot let in (by member id, as memberships are kept), so
that the 8-person cap counts people who are still there and a moderator's removal
reaches the WhatsApp group too.
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
    # The platform's id. NULL until the platform has created the group.
    platform_id = fields.CharField(max_length=128, null=True, unique=True)
    request_id = fields.CharField(max_length=128, null=True)
    subject = fields.CharField(max_length=128)
    # requested: asked for, not yet sent. creating: the create call is being made (at most
    # once). pending: Meta answered with a request id only. active: the group exists.
    status = fields.CharField(max_length=12, default="active")
    requested_by_id = fields.IntField(null=True)  # the organizer told when it is ready
    created_at = fields.DatetimeField()

    class Meta:
        table = "team_group"


class TeamSeat(Model):
    """A member the bot approved into a team group, until they leave or are removed."""

    id = fields.IntField(primary_key=True)
    team = fields.ForeignKeyField("models.TeamGroup", related_name="seats",
                                  on_delete=fields.CASCADE)
    member = fields.ForeignKeyField("models.Member", related_name="team_seats",
                                    on_delete=fields.CASCADE)
    join_request_id = fields.CharField(max_length=128)
    status = fields.CharField(max_length=12, default="approved")  # approved|left|failed
    created_at = fields.DatetimeField()

    class Meta:
        table = "team_group_seat"
        unique_together = (("team", "join_request_id"),)
