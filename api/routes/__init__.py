"""The API's routes, one module per resource: ``submit`` (listings, try-ons), ``jobs`` (read,
list, cancel), ``health`` (liveness, readiness); ``resources`` holds the bodies they exchange."""
