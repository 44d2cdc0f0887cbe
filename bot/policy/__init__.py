"""Policy: consent rules, restraint (quiet hours, caps, pacing) and moderation rules."""
