"""claude-failover engine: UI-free workers, state and the simulated agent."""
