# Pinned versions for the real-OpenClaw harness (bump together, then run plugin.sh).
NODE_VERSION=24.21.0
OPENCLAW_VERSION=2026.9.6
