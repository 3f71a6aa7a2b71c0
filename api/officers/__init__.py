"""Officers: people of an agency who sign in to the console, their sessions and second factor."""
