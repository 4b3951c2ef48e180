"""relaykit: RELAY v2 prompts, real and testable anywhere."""
