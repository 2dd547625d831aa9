"""Transfer: the gateway to the French liaison system. Sends return requests, withdrawals and
admission offers as matching instructs, each once."""
