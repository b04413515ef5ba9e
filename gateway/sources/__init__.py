"""Message sources. Facebook Messenger is the one this gateway speaks."""
