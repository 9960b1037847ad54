"""Services: the domain logic behind each route."""
