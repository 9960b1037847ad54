"""Domain: models, ids and errors. Depends on nothing else in Parley."""
