"""The four services of the exchange: intake, enforcement, matching, transfer."""
