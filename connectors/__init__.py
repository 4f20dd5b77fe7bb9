"""CRM connectors shipped with segsync. Each registers a ConnectorSpec under the `segsync.connectors` entry point."""
