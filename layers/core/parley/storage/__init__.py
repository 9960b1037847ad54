"""Storage: table schemas (one source for CDK, moto and the local server) and repositories."""
