"""The route table: every route of Parley's API, the one list that drives CDK (functions,
integrations, permissions to tables) and the local server (routing, auth).

Each route names the directory under functions/ whose handler.py serves it; a test checks
that every handler registers exactly the routes the table gives it, with the same permission.
"""

from dataclasses import replace
from pathlib import Path

from parley.api.routing import Consumer, Route, RouteTable, Scheduled

# Resource kinds: a table's name ("conversations") grants reading and writing its items;
# "<table>:read" only GetItem, BatchGetItem and Query (GET routes); "<table>:update" those and
# UpdateItem (GET routes that write back replies a dead invocation left pending, see
# services.conversations.settle). "secrets" grants read and write on the provider-key secrets
# (parley/<stage>/*), "secrets:read" reading only; "documents" and "documents:read" likewise for the
# documents bucket's objects; "bedrock" invoking Bedrock models.
PROVIDERS = ("chats", "secrets")
# Model calls: provider records and keys (read), metering (and its queue, for records DynamoDB
# refuses), documents named by messages, Bedrock models.
# "search": the search engine's collection (OpenSearch Serverless), for retrieval (RAG).
COMPLETIONS = ("chats", "secrets:read", "usage", "metering", "documents:read", "bedrock", "search")
# Knowledge indexes: their records and documents (chats), texts (documents), chunks (search); a
# small document is embedded in the request (a model call); a large one goes to the ingest queue.
INDEXES = ("chats", "documents", "search", "ingest", "secrets:read", "usage", "metering", "bedrock")
# List routes sign and check their pagination cursors with the stage's cursor key.
CURSORS = "cursors"
# Conversation writes check the provider they name.
CONVERSATIONS = ("conversations", "chats")
# A key is its authorizer item (keys) and its listed record (chats), written together.
KEYS = ("keys", "chats")
# Webhooks: their records and deliveries (chats) and their signing secrets. Manual attempts
# (test, retry) POST from the API's function itself; "deliveries" sends to the webhook
# deliveries queue (consumers only: the scheduled attempts).
WEBHOOKS = ("chats", "secrets")
WEBHOOK_ATTEMPTS = ("chats", "secrets:read")
DELIVERIES = "deliveries"
# API Gateway caches an authorization this long: the bound within which a revoked or rotated-out
# secret is refused, and a change of limits applies.
AUTHORIZER_CACHE_SECONDS = 30

ROUTES = (
    Route("GET", "/v1/health", "health_get", None, description="Liveness; needs no API key."),
    Route(
        "GET",
        "/v1/openapi.json",
        "openapi_get",
        None,
        description="This API's OpenAPI 3.1 document (generated from this table); needs no API key.",
    ),
    Route(
        "POST",
        "/v1/chat/completions",
        "completions_create",
        "completions:CreateChatCompletion",
        streaming=True,
        resources=COMPLETIONS,
        timeout_seconds=900,
        description="OpenAI-compatible chat completion, streamed as SSE with stream=true.",
    ),
    Route(
        "POST",
        "/v1/responses",
        "responses_create",
        "responses:CreateResponse",
        streaming=True,
        resources=("conversations", "messages", *COMPLETIONS),
        timeout_seconds=900,
        description="OpenAI's Responses API: a model response, stored in a Parley conversation unless store=false; "
        "OpenAI's typed events as SSE with stream=true.",
    ),
    Route(
        "GET",
        "/v1/responses/{response_id}",
        "responses_get",
        "responses:GetResponse",
        resources=("conversations:read", "messages:update"),
        description="A stored response, as OpenAI answers it.",
    ),
    Route(
        "DELETE",
        "/v1/responses/{response_id}",
        "responses_delete",
        "responses:DeleteResponse",
        resources=("conversations", "messages"),
        description="Delete a stored response (and the conversation created for it when nothing else was added).",
    ),
    Route(
        "GET",
        "/v1/responses/{response_id}/input_items",
        "responses_input_items",
        "responses:ListInputItems",
        resources=("conversations:read", "messages:read"),
        description="A stored response's input items, in OpenAI's list shape.",
    ),
    Route(
        "POST",
        "/v1/responses/{response_id}/cancel",
        "responses_cancel",
        "responses:CancelResponse",
        resources=("conversations", "messages:update"),
        description="Cancel a queued or in-progress background response (a finished or synchronous one: 400).",
    ),
    Route(
        "GET",
        "/v1/models",
        "models_list",
        "models:ListModels",
        resources=("chats:read",),
        description="The models this key can name (echo; each provider's as <provider name>/<model>), OpenAI's shape.",
    ),
    Route(
        "GET",
        "/v1/models/{model_id}",
        "models_get",
        "models:GetModel",
        resources=("chats:read",),
        description="One model, as OpenAI answers it (a slash in the id is sent as %2F).",
    ),
    Route(
        "GET",
        "/v1/chats/{chat_id}/models",
        "models_list",
        "models:ListModels",
        resources=("chats:read",),
        description="The model a chat's completions use, for OpenAI clients given the base URL .../v1/chats/{chat_id}.",
    ),
    Route(
        "GET",
        "/v1/chats/{chat_id}/models/{model_id}",
        "models_get",
        "models:GetModel",
        resources=("chats:read",),
        description="The same, one model.",
    ),
    Route(
        "POST",
        "/v1/embeddings",
        "embeddings_create",
        "embeddings:CreateEmbedding",
        resources=COMPLETIONS,
        description="OpenAI-compatible embeddings (the built-in model 'local' on the local server).",
    ),
    Route(
        "POST",
        "/v1/providers",
        "providers_create",
        "providers:CreateProvider",
        resources=PROVIDERS,
        description="Store an AI provider (its api_key goes to Secrets Manager).",
    ),
    Route(
        "GET",
        "/v1/providers",
        "providers_list",
        "providers:ListProviders",
        resources=("chats:read", CURSORS),
        description="List the project's AI providers.",
    ),
    Route(
        "GET",
        "/v1/providers/{provider_id}",
        "providers_get",
        "providers:GetProvider",
        resources=("chats:read",),
        description="Get an AI provider (never its key).",
    ),
    Route(
        "PATCH",
        "/v1/providers/{provider_id}",
        "providers_update",
        "providers:UpdateProvider",
        resources=PROVIDERS,
        description="Update an AI provider; api_key replaces the stored key.",
    ),
    Route(
        "DELETE",
        "/v1/providers/{provider_id}",
        "providers_delete",
        "providers:DeleteProvider",
        resources=PROVIDERS,
        description="Delete an AI provider and its stored key.",
    ),
    Route(
        "GET",
        "/v1/usage",
        "usage_get",
        "usage:GetUsage",
        resources=("usage:read",),
        description="Token and cost sums for a date range, by model or by key.",
    ),
    Route(
        "GET",
        "/v1/audit-events",
        "audit_events_list",
        "audit:ListAuditEvents",
        resources=("usage:read", CURSORS),
        description="The project's audit trail, newest first.",
    ),
    Route(
        "POST",
        "/v1/conversations",
        "conversations_create",
        "conversations:CreateConversation",
        resources=CONVERSATIONS,
        description="Create a stored conversation.",
    ),
    Route(
        "GET",
        "/v1/conversations",
        "conversations_list",
        "conversations:ListConversations",
        resources=("conversations:read", CURSORS),
        description="List conversations by user and status, newest activity first (include_threads adds threads).",
    ),
    Route(
        "GET",
        "/v1/conversations/{conversation_id}",
        "conversations_get",
        "conversations:GetConversation",
        # include=messages reads them, and writes back replies a dead invocation left pending
        resources=("conversations:read", "messages:update"),
        description="Get a conversation (include=sessions adds its sessions, include=messages its newest messages).",
    ),
    Route(
        "PATCH",
        "/v1/conversations/{conversation_id}",
        "conversations_update",
        "conversations:UpdateConversation",
        resources=CONVERSATIONS,
        description="Update a conversation.",
    ),
    Route(
        "DELETE",
        "/v1/conversations/{conversation_id}",
        "conversations_delete",
        "conversations:DeleteConversation",
        resources=("conversations", "messages"),
        description="Delete a conversation, its messages, sessions and threads (a thread: itself).",
    ),
    Route(
        "POST",
        "/v1/conversations/{conversation_id}/archive",
        "conversations_archive",
        "conversations:ArchiveConversation",
        resources=("conversations",),
        description="Archive (soft close).",
    ),
    Route(
        "POST",
        "/v1/conversations/{conversation_id}/unarchive",
        "conversations_unarchive",
        "conversations:UnarchiveConversation",
        resources=("conversations",),
        description="Resume an archived one.",
    ),
    Route(
        "POST",
        "/v1/conversations/{conversation_id}/messages",
        "messages_create",
        "conversations:SendMessage",
        streaming=True,
        resources=("conversations", "messages", *COMPLETIONS),
        timeout_seconds=900,
        description="Send a message and get the reply (SSE with stream=true).",
    ),
    Route(
        "GET",
        "/v1/conversations/{conversation_id}/messages",
        "messages_list",
        "conversations:ListMessages",
        resources=("conversations:read", "messages:update", CURSORS),
        description="Message history by cursor or offset.",
    ),
    Route(
        "POST",
        "/v1/conversations/{conversation_id}/sessions",
        "sessions_create",
        "conversations:CreateSession",
        resources=CONVERSATIONS,
        description="Create a model-bound chat session.",
    ),
    Route(
        "GET",
        "/v1/conversations/{conversation_id}/sessions",
        "sessions_list",
        "conversations:ListSessions",
        resources=("conversations:read", CURSORS),
        description="List a conversation's chat sessions.",
    ),
    Route(
        "GET",
        "/v1/conversations/{conversation_id}/context",
        "context_get",
        "conversations:GetContext",
        resources=("conversations:read", "messages:read", "chats:read"),
        description="The context window's state.",
    ),
    Route(
        "POST",
        "/v1/conversations/{conversation_id}/context",
        "context_inject",
        "conversations:InjectContext",
        resources=("conversations", "messages", "chats"),
        description="Inject hidden context.",
    ),
    Route(
        "POST",
        "/v1/conversations/{conversation_id}/threads",
        "threads_create",
        "conversations:CreateThread",
        resources=("conversations",),
        description="Start a thread anchored to a message (a conversation of its own with this one as parent).",
    ),
    Route(
        "GET",
        "/v1/conversations/{conversation_id}/threads",
        "threads_list",
        "conversations:ListThreads",
        resources=("conversations:read", CURSORS),
        description="List a conversation's threads, oldest first.",
    ),
    Route(
        "POST",
        "/v1/conversations/{conversation_id}/handoff",
        "handoffs_create",
        "conversations:RequestHandoff",
        # an agent handoff resolves the agent (its records are in the chats table)
        resources=("conversations", "chats:read"),
        description="Hand the conversation to a human operator, or to another agent.",
    ),
    Route(
        "POST",
        "/v1/conversations/{conversation_id}/handoff/resolve",
        "handoffs_resolve",
        "conversations:ResolveHandoff",
        resources=("conversations",),
        description="Resolve the pending handoff: the conversation is active again.",
    ),
    Route(
        "GET",
        "/v1/conversations/{conversation_id}/handoffs",
        "handoffs_list",
        "conversations:ListHandoffs",
        resources=("conversations:read", CURSORS),
        description="The conversation's handoffs, oldest first.",
    ),
    Route(
        "GET",
        "/v1/handoffs",
        "handoff_queue_list",
        "conversations:ListHandoffs",
        resources=("conversations:read", CURSORS),
        description="The project's handoffs by status (pending: the operators' queue), oldest first.",
    ),
    Route(
        "POST",
        "/v1/chats/completions",
        "completions_create",
        "completions:CreateChatCompletion",
        streaming=True,
        resources=COMPLETIONS,
        timeout_seconds=900,
        description="Seed 003's stateless completions path: the same as /v1/chat/completions.",
    ),
    Route(
        "POST",
        "/v1/chats",
        "chats_create",
        "chats:CreateChat",
        resources=("chats",),
        description="Store a chat configuration (AI provider, system message, model).",
    ),
    Route(
        "GET",
        "/v1/chats",
        "chats_list",
        "chats:ListChats",
        resources=("chats:read", CURSORS),
        description="List chats.",
    ),
    Route(
        "GET", "/v1/chats/{chat_id}", "chats_get", "chats:GetChat", resources=("chats:read",), description="Get a chat."
    ),
    Route(
        "PATCH",
        "/v1/chats/{chat_id}",
        "chats_update",
        "chats:UpdateChat",
        resources=("chats",),
        description="Update a chat.",
    ),
    Route(
        "DELETE",
        "/v1/chats/{chat_id}",
        "chats_delete",
        "chats:DeleteChat",
        resources=("chats",),
        description="Delete a chat.",
    ),
    Route(
        "POST",
        "/v1/chats/{chat_id}/completions",
        "chats_complete",
        "chats:CreateChatCompletion",
        streaming=True,
        resources=COMPLETIONS,
        timeout_seconds=900,
        description="A completion with the chat's provider, model and system message.",
    ),
    Route(
        "POST",
        "/v1/chats/{chat_id}/chat/completions",
        "chats_complete",
        "chats:CreateChatCompletion",
        streaming=True,
        resources=COMPLETIONS,
        timeout_seconds=900,
        description="The same, for OpenAI clients given the base URL .../v1/chats/{chat_id}.",
    ),
    Route(
        "POST",
        "/v1/indexes",
        "indexes_create",
        "indexes:CreateIndex",
        resources=INDEXES,
        description="Create a knowledge index (its embedding model is called once to learn its dimension).",
    ),
    Route(
        "GET",
        "/v1/indexes",
        "indexes_list",
        "indexes:ListIndexes",
        resources=("chats:read", CURSORS),
        description="List the project's knowledge indexes.",
    ),
    Route(
        "GET",
        "/v1/indexes/{index_id}",
        "indexes_get",
        "indexes:GetIndex",
        resources=("chats:read",),
        description="Get a knowledge index, with its document counts by status.",
    ),
    Route(
        "PATCH",
        "/v1/indexes/{index_id}",
        "indexes_update",
        "indexes:UpdateIndex",
        resources=("chats",),
        description="Rename an index; change its description, metadata or chunking (for documents added next).",
    ),
    Route(
        "DELETE",
        "/v1/indexes/{index_id}",
        "indexes_delete",
        "indexes:DeleteIndex",
        resources=("chats", "documents", "search"),
        timeout_seconds=29,  # buffered: API Gateway answers 504 after 29 s (was 300; see the infra16 report)
        description="Delete an index, its documents and their chunks (resumable: a retry finishes it).",
    ),
    Route(
        "POST",
        "/v1/indexes/{index_id}/documents",
        "index_documents_create",
        "indexes:AddDocument",
        resources=INDEXES,
        timeout_seconds=29,  # buffered: API Gateway answers 504 after 29 s (was 120; see the infra16 report)
        description="Add (or replace) a document: a stored one by document_id, or inline text.",
    ),
    Route(
        "GET",
        "/v1/indexes/{index_id}/documents",
        "index_documents_list",
        "indexes:ListDocuments",
        resources=("chats:read", CURSORS),
        description="The index's documents with their ingestion status.",
    ),
    Route(
        "GET",
        "/v1/indexes/{index_id}/documents/{document_id}",
        "index_documents_get",
        "indexes:GetDocument",
        resources=("chats:read",),
        description="A document of the index and its ingestion status.",
    ),
    Route(
        "DELETE",
        "/v1/indexes/{index_id}/documents/{document_id}",
        "index_documents_delete",
        "indexes:DeleteDocument",
        resources=("chats", "documents", "search"),
        description="Remove a document and its chunks from the index.",
    ),
    Route(
        "POST",
        "/v1/indexes/{index_id}/query",
        "index_query",
        "indexes:QueryIndex",
        resources=COMPLETIONS,
        description="The index's best chunks for a query (hybrid: BM25 and k-NN, fused by reciprocal rank).",
    ),
    Route(
        "GET",
        "/v1/search/messages",
        "search_messages",
        "search:SearchMessages",
        resources=("search",),
        description="Full-text search over the project's conversation messages.",
    ),
    Route(
        "POST",
        "/v1/documents",
        "documents_create",
        "documents:CreateDocument",
        resources=("chats", "documents"),
        description="Store a text document (S3) that messages can reference.",
    ),
    Route(
        "GET",
        "/v1/documents",
        "documents_list",
        "documents:ListDocuments",
        resources=("chats:read", CURSORS),
        description="List documents (metadata).",
    ),
    Route(
        "GET",
        "/v1/documents/{document_id}",
        "documents_get",
        "documents:GetDocument",
        resources=("chats:read", "documents:read"),
        description="Get a document; include=content adds its text.",
    ),
    Route(
        "DELETE",
        "/v1/documents/{document_id}",
        "documents_delete",
        "documents:DeleteDocument",
        resources=("chats", "documents"),
        description="Delete a document and its text.",
    ),
)

ROUTES += (
    Route(
        "POST",
        "/v1/projects",
        "projects_create",
        "projects:CreateProject",
        resources=("chats",),
        description="Create a project in the caller's organization (org administrators).",
    ),
    Route(
        "GET",
        "/v1/projects",
        "projects_list",
        "projects:ListProjects",
        resources=("chats:read", CURSORS),
        description="List the organization's projects.",
    ),
    Route(
        "GET",
        "/v1/projects/{project_id}",
        "projects_get",
        "projects:GetProject",
        resources=("chats:read",),
        description="Get a project and its limits.",
    ),
    Route(
        "PATCH",
        "/v1/projects/{project_id}",
        "projects_update",
        "projects:UpdateProject",
        resources=("chats",),
        description="Rename a project; set its rate limits and budgets.",
    ),
    Route(
        "POST",
        "/v1/api-keys",
        "api_keys_create",
        "api_keys:CreateApiKey",
        resources=KEYS,
        description="Create an API key (its secret is shown once); never more than the calling key grants.",
    ),
    Route(
        "GET",
        "/v1/api-keys",
        "api_keys_list",
        "api_keys:ListApiKeys",
        resources=("chats:read", CURSORS),
        description="List a project's API keys (never their secrets).",
    ),
    Route(
        "GET",
        "/v1/api-keys/{key_id}",
        "api_keys_get",
        "api_keys:GetApiKey",
        resources=("chats:read",),
        description="Get an API key.",
    ),
    Route(
        "PATCH",
        "/v1/api-keys/{key_id}",
        "api_keys_update",
        "api_keys:UpdateApiKey",
        resources=KEYS,
        description="Rename an API key; set its rate limits and budget.",
    ),
    Route(
        "DELETE",
        "/v1/api-keys/{key_id}",
        "api_keys_delete",
        "api_keys:DeleteApiKey",
        resources=KEYS,
        description="Revoke an API key.",
    ),
    Route(
        "POST",
        "/v1/api-keys/{key_id}/rotate",
        "api_keys_rotate",
        "api_keys:RotateApiKey",
        resources=KEYS,
        description="Give an API key a new secret; the old one stops working.",
    ),
)

WEBHOOK = "/v1/webhooks/{webhook_id}"
ROUTES += (
    Route(
        "POST",
        "/v1/webhooks",
        "webhooks_create",
        "webhooks:CreateWebhook",
        resources=WEBHOOKS,
        description="Create a webhook (its signing secret is shown once).",
    ),
    Route(
        "GET",
        "/v1/webhooks",
        "webhooks_list",
        "webhooks:ListWebhooks",
        resources=("chats:read", CURSORS),
        description="List the project's webhooks (never their secrets).",
    ),
    Route(
        "GET", WEBHOOK, "webhooks_get", "webhooks:GetWebhook", resources=("chats:read",), description="Get a webhook."
    ),
    Route(
        "PATCH",
        WEBHOOK,
        "webhooks_update",
        "webhooks:UpdateWebhook",
        resources=("chats",),
        description="Change a webhook's URL, event types, description; enable or disable it.",
    ),
    Route(
        "DELETE",
        WEBHOOK,
        "webhooks_delete",
        "webhooks:DeleteWebhook",
        resources=WEBHOOKS,
        description="Delete a webhook and its signing secret.",
    ),
    Route(
        "POST",
        f"{WEBHOOK}/rotate",
        "webhooks_rotate",
        "webhooks:RotateWebhookSecret",
        resources=WEBHOOKS,
        description="A new signing secret (shown once); the previous one also signs for a grace period.",
    ),
    Route(
        "POST",
        f"{WEBHOOK}/test",
        "webhooks_test",
        "webhooks:TestWebhook",
        resources=WEBHOOK_ATTEMPTS,
        description="Send a webhook.test event to the endpoint now; answers the delivery.",
    ),
    Route(
        "GET",
        f"{WEBHOOK}/deliveries",
        "webhook_deliveries_list",
        "webhooks:ListWebhookDeliveries",
        resources=("chats:read", CURSORS),
        description="A webhook's deliveries, newest first (status filters them).",
    ),
    Route(
        "GET",
        f"{WEBHOOK}/deliveries/{{delivery_id}}",
        "webhook_deliveries_get",
        "webhooks:GetWebhookDelivery",
        resources=("chats:read",),
        description="A delivery and its attempts.",
    ),
    Route(
        "POST",
        f"{WEBHOOK}/deliveries/{{delivery_id}}/retry",
        "webhook_deliveries_retry",
        "webhooks:RetryWebhookDelivery",
        resources=WEBHOOK_ATTEMPTS,
        description="Attempt a delivery again now, whatever its status.",
    ),
)

AGENT = "/v1/agents/{agent_id}"
# Agents: their records (heads, versions, name claims: chats) and their signing secrets. A route
# takes the agent's id or its name.
AGENTS = ("chats", "secrets")
ROUTES += (
    Route(
        "POST",
        "/v1/agents",
        "agents_create",
        "agents:CreateAgent",
        resources=AGENTS,
        description="Create an agent (version 1); its signing secret is shown once.",
    ),
    Route(
        "GET",
        "/v1/agents",
        "agents_list",
        "agents:ListAgents",
        resources=("chats:read", CURSORS),
        description="List the project's agents at their latest versions.",
    ),
    Route(
        "GET",
        AGENT,
        "agents_get",
        "agents:GetAgent",
        resources=("chats:read",),
        description="Get an agent by id or name; version=N gets that stored version.",
    ),
    Route(
        "PATCH",
        AGENT,
        "agents_update",
        "agents:UpdateAgent",
        # checks the provider it names
        resources=("chats",),
        description="Update an agent: a new version.",
    ),
    Route(
        "DELETE",
        AGENT,
        "agents_delete",
        "agents:DeleteAgent",
        resources=AGENTS,
        description="Delete an agent, its versions and its signing secret.",
    ),
    Route(
        "GET",
        f"{AGENT}/versions",
        "agent_versions_list",
        "agents:GetAgent",
        resources=("chats:read", CURSORS),
        description="An agent's stored versions, newest first.",
    ),
    Route(
        "POST",
        f"{AGENT}/rotate-secret",
        "agents_rotate_secret",
        "agents:RotateAgentSecret",
        resources=AGENTS,
        description="A new signing secret for the agent's http tools (shown once); the old one stops at once.",
    ),
)

# Functions without a route, run on a schedule.
SCHEDULED = (
    Scheduled(
        "sweep",
        every_minutes=5,
        # folds parked usage into the counters; writes back replies left pending (the sparse pending index)
        resources=("conversations", "messages", "usage", "metering:consume"),
        timeout_seconds=300,
        description="Fold parked usage records in; write back replies a dead invocation left pending.",
    ),
)

# Functions fed by event sources: the tables' streams (parley.services.events, the emitter) and
# queues (parley.services.webhooks: the delivery pipeline).
CONSUMERS = (
    Consumer(
        "events_emit",
        kind="stream",
        sources=("conversations", "messages"),
        batch_size=100,
        resources=("events:put",),
        timeout_seconds=60,
        max_attempts=10,
        dead_letter="events_dlq",  # settings.events_dlq
        description="Committed changes of conversations and messages -> Parley's events on EventBridge.",
    ),
    Consumer(
        "search_index",
        kind="stream",
        sources=("conversations", "messages"),
        batch_size=100,
        resources=("conversations:read", "search"),
        timeout_seconds=60,
        max_attempts=10,
        dead_letter="events_dlq",
        description="Committed messages -> the message search index (edits replace, deletes remove).",
    ),
    Consumer(
        "index_ingest",
        "queue",
        ("ingest_queue",),
        batch_size=1,
        resources=("chats", "documents:read", "search", "ingest", "secrets:read", "usage", "metering", "bedrock"),
        timeout_seconds=300,
        memory_mb=1024,
        description="A knowledge index's document: chunked, embedded and put in the search engine.",
    ),
    Consumer(
        "webhooks_fanout",
        "queue",
        ("events_queue",),
        batch_size=10,
        resources=("chats", DELIVERIES),
        timeout_seconds=60,
        description="Each Parley event: one delivery per webhook that wants it, queued for its first attempt.",
    ),
    Consumer(
        "webhooks_deliver",
        "queue",
        ("deliveries_queue",),
        batch_size=5,
        # sends to its own queue: the next attempt, and waits longer than SQS's 900 s delay
        resources=("chats", "secrets:read", DELIVERIES),
        timeout_seconds=90,  # 5 attempts of at most 10 s each, and their records
        description="A scheduled webhook attempt: signed POST, recorded, retried on its schedule.",
    ),
)


# OpenAI's surface under /openai/v1, so OpenAI(base_url=".../openai/v1") finds every route it knows
# in OpenAI's shapes: the routes Parley shares with OpenAI, served by the same functions (a route
# more each, no function more), and OpenAI's Conversations API (one function) over Parley's
# conversations. /v1/... stays Parley's native API.
OPENAI_SHARED = (
    ("POST", "/v1/chat/completions"),
    ("GET", "/v1/models"),
    ("GET", "/v1/models/{model_id}"),
    ("POST", "/v1/responses"),
    ("GET", "/v1/responses/{response_id}"),
    ("DELETE", "/v1/responses/{response_id}"),
    ("GET", "/v1/responses/{response_id}/input_items"),
    ("POST", "/v1/responses/{response_id}/cancel"),
    ("POST", "/v1/embeddings"),
)
OPENAI_CONVERSATIONS = ("conversations", "messages")
OPENAI_ROUTES = (
    *(
        replace(route, path="/openai" + route.path, description=f"{route.description} (OpenAI's base URL /openai/v1.)")
        for shared in OPENAI_SHARED
        for route in ROUTES
        if (route.method, route.path) == shared
    ),
    Route(
        "POST",
        "/openai/v1/conversations",
        "openai_conversations",
        "conversations:CreateConversation",
        resources=OPENAI_CONVERSATIONS,
        description="OpenAI's Conversations API: create a conversation (a Parley conversation) with up to 20 items.",
    ),
    Route(
        "GET",
        "/openai/v1/conversations/{conversation_id}",
        "openai_conversations",
        "conversations:GetConversation",
        resources=OPENAI_CONVERSATIONS,
        description="A conversation, as OpenAI answers it (any Parley conversation).",
    ),
    Route(
        "POST",
        "/openai/v1/conversations/{conversation_id}",
        "openai_conversations",
        "conversations:UpdateConversation",
        resources=OPENAI_CONVERSATIONS,
        description="Replace a conversation's metadata.",
    ),
    Route(
        "DELETE",
        "/openai/v1/conversations/{conversation_id}",
        "openai_conversations",
        "conversations:DeleteConversation",
        resources=OPENAI_CONVERSATIONS,
        description="Delete a conversation with its messages (as DELETE /v1/conversations/{conversation_id}).",
    ),
    Route(
        "GET",
        "/openai/v1/conversations/{conversation_id}/items",
        "openai_conversations",
        "conversations:ListMessages",
        resources=OPENAI_CONVERSATIONS,
        description="A conversation's items (its messages), OpenAI's list (after, limit, order desc by default).",
    ),
    Route(
        "POST",
        "/openai/v1/conversations/{conversation_id}/items",
        "openai_conversations",
        "conversations:CreateItems",
        resources=OPENAI_CONVERSATIONS,
        description="Append up to 20 items (messages, function calls and outputs) without a model call.",
    ),
    Route(
        "GET",
        "/openai/v1/conversations/{conversation_id}/items/{item_id}",
        "openai_conversations",
        "conversations:ListMessages",
        resources=OPENAI_CONVERSATIONS,
        description="One item of a conversation.",
    ),
    Route(
        "DELETE",
        "/openai/v1/conversations/{conversation_id}/items/{item_id}",
        "openai_conversations",
        "conversations:DeleteItem",
        resources=OPENAI_CONVERSATIONS,
        description="Delete the message an item is; answers the conversation.",
    ),
)
assert len(OPENAI_ROUTES) == len(OPENAI_SHARED) + 8, "a shared route is missing from ROUTES"
ROUTES = (*ROUTES, *OPENAI_ROUTES)

TABLE = RouteTable(
    routes=ROUTES,
    authorizer="authorizer",
    root=Path(__file__).resolve().parent,
    scheduled=SCHEDULED,
    consumers=CONSUMERS,
    authorizer_cache_seconds=AUTHORIZER_CACHE_SECONDS,
)
