"""Moderation models: the audit log, warnings, mutes, bans, reports, appeals, relayed posts.
# Note: no semicolons in model docstrings. tortoise copies them into SQL comments and its
# SQLite migration runner splits statements on ";".

None of these tables holds what a member posted. The audit log names the rule, the
action and a short machine detail, never the text. Report and appeal texts are the
reporter's and appellant's own words, encrypted at rest.
"""

from __future__ import annotations

from tortoise import fields
from tortoise.models import Model


class ModAction(Model):
    """One moderation action (the audit log). Never the message text. Kept for the retention."""

    id = fields.IntField(primary_key=True)
    at = fields.DatetimeField(db_index=True)
    # The group acted in. A ban spans several groups: group is NULL and scope lists their ids.
    group = fields.ForeignKeyField("models.Group", related_name="mod_actions", null=True,
                                   on_delete=fields.SET_NULL)
    scope = fields.JSONField(null=True)
    group_codes = fields.CharField(max_length=400, default="")  # as shown, kept if renamed
    # NULL actor: the bot enforced a rule. Handles are snapshots, "(erased member)" after
    # that member erased their data.
    actor = fields.ForeignKeyField("models.Member", related_name="mod_actions_taken",
                                   null=True, on_delete=fields.SET_NULL)
    actor_handle = fields.CharField(max_length=40, null=True)
    target = fields.ForeignKeyField("models.Member", related_name="mod_actions_received",
                                    null=True, on_delete=fields.SET_NULL)
    target_handle = fields.CharField(max_length=40, null=True)
    rule_id = fields.CharField(max_length=32, null=True)
    action = fields.CharField(max_length=48)  # hold+warn, mute, remove, ban, setrule, ...
    reason = fields.CharField(max_length=300, null=True)  # a moderator's reason or note
    detail = fields.CharField(max_length=64, null=True)  # the rule engine's machine detail
    until = fields.DatetimeField(null=True)
    shadow = fields.BooleanField(default=False)  # logged only, nothing was done
    source = fields.CharField(max_length=16, default="command")  # auto|room|command|report|appeal
    undone_at = fields.DatetimeField(null=True)  # overturned on appeal

    class Meta:
        table = "mod_action"
        indexes = (("group_id", "id"), ("target_id",))


class ModWarning(Model):
    """A strike against a member in a group. Counts toward the ladder until it expires."""

    id = fields.IntField(primary_key=True)
    member = fields.ForeignKeyField("models.Member", related_name="mod_warnings",
                                    on_delete=fields.CASCADE)
    group = fields.ForeignKeyField("models.Group", related_name="mod_warnings",
                                   on_delete=fields.CASCADE)
    rule_id = fields.CharField(max_length=32)  # "moderator" for a warning given by hand
    action = fields.ForeignKeyField("models.ModAction", related_name="warnings", null=True,
                                    on_delete=fields.SET_NULL)
    created_at = fields.DatetimeField()
    expires_at = fields.DatetimeField()
    revoked = fields.BooleanField(default=False)  # overturned on appeal

    class Meta:
        table = "mod_warning"
        indexes = (("member_id", "group_id", "expires_at"),)


class ModMute(Model):
    """A member may not post to a group until `until` (or until lifted)."""

    id = fields.IntField(primary_key=True)
    member = fields.ForeignKeyField("models.Member", related_name="mod_mutes",
                                    on_delete=fields.CASCADE)
    group = fields.ForeignKeyField("models.Group", related_name="mod_mutes",
                                   on_delete=fields.CASCADE)
    until = fields.DatetimeField()
    action = fields.ForeignKeyField("models.ModAction", related_name="mutes", null=True,
                                    on_delete=fields.SET_NULL)
    lifted_at = fields.DatetimeField(null=True)

    class Meta:
        table = "mod_mute"
        indexes = (("member_id", "group_id", "until"),)


class ModBan(Model):
    """A member shut out of every group sharing the ban list until `until`.

    `previous` keeps each group's membership status from before the ban, so lifting the
    ban puts things back as they were.
    """

    id = fields.IntField(primary_key=True)
    member = fields.ForeignKeyField("models.Member", related_name="mod_bans",
                                    on_delete=fields.CASCADE)
    group_ids = fields.JSONField()
    previous = fields.JSONField()
    reason = fields.CharField(max_length=300)
    until = fields.DatetimeField(db_index=True)
    action = fields.ForeignKeyField("models.ModAction", related_name="bans", null=True,
                                    on_delete=fields.SET_NULL)
    created_at = fields.DatetimeField()
    lifted_at = fields.DatetimeField(null=True)

    class Meta:
        table = "mod_ban"
        indexes = (("member_id", "lifted_at"),)


class RelayedPost(Model):
    """A post that passed moderation and was relayed, so it can be reported by its number."""

    id = fields.IntField(primary_key=True)
    group = fields.ForeignKeyField("models.Group", related_name="relayed_posts",
                                   on_delete=fields.CASCADE)
    author = fields.ForeignKeyField("models.Member", related_name="relayed_posts", null=True,
                                    on_delete=fields.SET_NULL)
    created_at = fields.DatetimeField(db_index=True)

    class Meta:
        table = "mod_post"


class ModReport(Model):
    """A member's report to a group's moderators. The reporter is never shown to the reported."""

    id = fields.IntField(primary_key=True)
    group = fields.ForeignKeyField("models.Group", related_name="mod_reports",
                                   on_delete=fields.CASCADE)
    reporter = fields.ForeignKeyField("models.Member", related_name="reports_made",
                                      null=True, on_delete=fields.SET_NULL)
    target = fields.ForeignKeyField("models.Member", related_name="reports_about",
                                    null=True, on_delete=fields.SET_NULL)
    target_handle = fields.CharField(max_length=40, null=True)
    post = fields.ForeignKeyField("models.RelayedPost", related_name="reports", null=True,
                                  on_delete=fields.SET_NULL)
    text_enc = fields.TextField(null=True)  # the reporter's words, encrypted
    status = fields.CharField(max_length=12, default="open")  # open|resolved
    resolution = fields.CharField(max_length=48, null=True)
    resolved_by = fields.ForeignKeyField("models.Member", related_name="reports_resolved",
                                         null=True, on_delete=fields.SET_NULL)
    created_at = fields.DatetimeField()
    resolved_at = fields.DatetimeField(null=True)

    class Meta:
        table = "mod_report"
        indexes = (("group_id", "status"),)


class ModAppeal(Model):
    """A member's appeal against an action taken against them, decided by another moderator."""

    id = fields.IntField(primary_key=True)
    action = fields.ForeignKeyField("models.ModAction", related_name="appeals",
                                    on_delete=fields.CASCADE)
    member = fields.ForeignKeyField("models.Member", related_name="mod_appeals",
                                    on_delete=fields.CASCADE)
    text_enc = fields.TextField(null=True)  # the appellant's words, encrypted
    status = fields.CharField(max_length=12, default="open")  # open|upheld|overturned
    decided_by = fields.ForeignKeyField("models.Member", related_name="appeals_decided",
                                        null=True, on_delete=fields.SET_NULL)
    note = fields.CharField(max_length=300, null=True)
    created_at = fields.DatetimeField()
    decided_at = fields.DatetimeField(null=True)

    class Meta:
        table = "mod_appeal"
        indexes = (("status",),)


class CarriedBan(Model):
    """A ban that outlives the banned member's own erasure (/forgetme).

    Erasure deletes the member, and with it their ModBan rows. Without this row a banned
    person could erase themselves and come straight back. Only the keyed hash of each
    address is kept (as for STOP suppression), with the groups and the end date, never
    a name, an address or the reason. When that address writes again, the ban is put
    back on the new member for the time left, and this row is deleted.
    """

    id = fields.IntField(primary_key=True)
    address_hash = fields.CharField(max_length=64, db_index=True)
    group_ids = fields.JSONField()
    until = fields.DatetimeField()
    created_at = fields.DatetimeField()

    class Meta:
        table = "mod_carried_ban"


class FloodMark(Model):
    """When a member posted in a group, for the flood rule (at most N posts in T seconds).

    Counted here rather than in a worker's memory, so that several workers and
    processing children count a member's posts together. Only the time: never the
    text. Kept for one flood window at most (the hourly purge), and gone with the
    member on erasure.
    """

    id = fields.BigIntField(primary_key=True)
    group = fields.ForeignKeyField("models.Group", related_name="flood_marks",
                                   on_delete=fields.CASCADE)
    member = fields.ForeignKeyField("models.Member", related_name="flood_marks",
                                    on_delete=fields.CASCADE)
    at = fields.DatetimeField(db_index=True)

    class Meta:
        table = "mod_flood"
        indexes = (("group_id", "member_id", "at"),)
