"""The search port (knowledge chunks for RAG, and message search) and its adapters:
`opensearch` (OpenSearch Serverless, deployed) and `local` (the local server and the tests)."""
