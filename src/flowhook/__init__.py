"""flowhook: start Action Flows from webhooks, API calls and events."""
