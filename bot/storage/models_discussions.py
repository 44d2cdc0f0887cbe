"""Discussion models: issues, their comments and followers, and polls with their votes.
# Note: no semicolons in model docstrings. tortoise copies them into SQL comments and its
# SQLite migration runner splits statements on ";".

Members appear in discussions by handle only. An erased member's comments stay as
placeholders (no text, no author) so the thread still reads in order.
"""

from __future__ import annotations

from tortoise import fields
from tortoise.models import Model


class Issue(Model):
    """A topic a group discusses. Creator set NULL when they erase their data."""

    id = fields.IntField(primary_key=True)
    group = fields.ForeignKeyField("models.Group", related_name="issues",
                                   on_delete=fields.CASCADE)
    title = fields.CharField(max_length=120)
    status = fields.CharField(max_length=12, default="open")  # open|closed
    outcome = fields.TextField(null=True)  # what the organizers decided, set at close
    created_by = fields.ForeignKeyField("models.Member", related_name="issues_created",
                                        null=True, on_delete=fields.SET_NULL)
    created_at = fields.DatetimeField()
    closed_at = fields.DatetimeField(null=True)

    class Meta:
        table = "discussion_issue"
        indexes = (("group_id", "status"),)


class Comment(Model):
    """One member's comment on an issue. Text and author are NULL once the author erased it."""

    id = fields.IntField(primary_key=True)
    issue = fields.ForeignKeyField("models.Issue", related_name="comments",
                                   on_delete=fields.CASCADE)
    author = fields.ForeignKeyField("models.Member", related_name="comments", null=True,
                                    on_delete=fields.SET_NULL)
    text = fields.TextField(null=True)
    created_at = fields.DatetimeField()

    class Meta:
        table = "discussion_comment"
        indexes = (("issue_id", "id"), ("author_id",))


class Follow(Model):
    """A member's choice to hear about an issue's comments, polls and outcome."""

    id = fields.IntField(primary_key=True)
    issue = fields.ForeignKeyField("models.Issue", related_name="follows",
                                   on_delete=fields.CASCADE)
    member = fields.ForeignKeyField("models.Member", related_name="follows",
                                    on_delete=fields.CASCADE)
    # Unfollowing keeps the row with False, so commenting again does not quietly sign the
    # member up again: an explicit /unfollow stands until an explicit /follow.
    following = fields.BooleanField(default=True)
    created_at = fields.DatetimeField()

    class Meta:
        table = "discussion_follow"
        unique_together = (("issue", "member"),)
        indexes = (("issue_id", "following"),)


class Poll(Model):
    """A question with fixed options, attached to an issue."""

    id = fields.IntField(primary_key=True)
    issue = fields.ForeignKeyField("models.Issue", related_name="polls",
                                   on_delete=fields.CASCADE)
    question = fields.CharField(max_length=200)
    hidden = fields.BooleanField(default=False)  # results shown only once closed
    status = fields.CharField(max_length=12, default="open")  # open|closed
    created_at = fields.DatetimeField()
    closed_at = fields.DatetimeField(null=True)

    class Meta:
        table = "discussion_poll"


class PollOption(Model):
    """One answer of a poll, numbered from 1 in the order the organizer wrote them."""

    id = fields.IntField(primary_key=True)
    poll = fields.ForeignKeyField("models.Poll", related_name="options",
                                  on_delete=fields.CASCADE)
    position = fields.SmallIntField()
    text = fields.CharField(max_length=80)

    class Meta:
        table = "discussion_poll_option"
        unique_together = (("poll", "position"),)


class Vote(Model):
    """One member's current choice in a poll (one row per member, changed in place)."""

    id = fields.IntField(primary_key=True)
    poll = fields.ForeignKeyField("models.Poll", related_name="votes",
                                  on_delete=fields.CASCADE)
    option = fields.ForeignKeyField("models.PollOption", related_name="votes",
                                    on_delete=fields.CASCADE)
    member = fields.ForeignKeyField("models.Member", related_name="votes",
                                    on_delete=fields.CASCADE)
    created_at = fields.DatetimeField()
    updated_at = fields.DatetimeField()

    class Meta:
        table = "discussion_vote"
        unique_together = (("poll", "member"),)
        indexes = (("member_id",),)
