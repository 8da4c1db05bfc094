"""The fleet: several hosts, each running its own engine on its own tmux, sharing one account state and one
queue over NATS JetStream. Nothing here is imported unless the config has a `fleet:` section; `nats-py` comes
with the `claude-failover[fleet]` extra."""
