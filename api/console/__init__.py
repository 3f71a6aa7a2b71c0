"""The console: server-rendered pages for the officers of the agencies (Bahasa Indonesia, English
as a switch), built on the same services as the API."""
