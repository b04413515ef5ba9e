"""Facebook Messenger: webhook parsing, signature check, Graph API client, webhook routes."""
