"""Stage validation (SVS): output statistics rules, the pre-run review, failure patterns."""
