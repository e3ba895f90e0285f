"""The Reflex side: page states and their glue to the job core (which imports no Reflex)."""
