"""Pure folds from events to read models: (state, event) -> state. Imports only events/."""
