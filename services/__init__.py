"""The four services of the Global Value Network platform."""
