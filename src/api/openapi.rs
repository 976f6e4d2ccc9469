//! `GET /api/openapi.json`: the REST API described as OpenAPI 3.

use axum::Json;
use serde_json::{json, Value};

fn error_response(description: &str) -> Value {
    json!({"description": description, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}})
}

pub fn openapi() -> Json<Value> {
    let session_id = json!({"name": "sessionId", "in": "path", "required": true, "schema": {"type": "string", "pattern": "^session-[A-Za-z0-9_-]{22,64}$"}});
    Json(json!({
        "openapi": "3.0.3",
        "info": {"title": "Claude Studio", "version": env!("CARGO_PKG_VERSION"),
                 "description": "Isolated Docker workspaces: container API, health and preview configuration. The terminal is a WebSocket at / and /ws."},
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "schemas": {
                "Error": {"type": "object", "required": ["error", "message", "retryable", "statusCode"], "properties": {
                    "error": {"type": "string", "enum": ["ValidationError", "AuthenticationError", "ContainerNotFoundError", "MessageTooLarge", "RateLimitError", "ContainerCreationError", "DockerDaemonError"]},
                    "message": {"type": "string"}, "retryable": {"type": "boolean"}, "statusCode": {"type": "integer"}}},
                "CreateRequest": {"type": "object", "additionalProperties": false, "properties": {
                    "image": {"type": "string"}, "workspaceDir": {"type": "string"},
                    "sessionId": {"type": "string", "description": "An existing session of the caller's to return instead of creating one."},
                    "env": {"type": "object", "additionalProperties": {"type": "string"}}}},
                "Created": {"type": "object", "properties": {"sessionId": {"type": "string"}, "containerId": {"type": "string"}, "status": {"type": "string"}, "image": {"type": "string"}}},
                "Session": {"type": "object", "properties": {"sessionId": {"type": "string"}, "containerId": {"type": "string"}, "status": {"type": "string"}, "image": {"type": "string"}, "createdAt": {"type": "integer"}, "previewPort": {"type": "integer"}}},
                "PreviewRequest": {"type": "object", "additionalProperties": false, "required": ["sessionId", "port"], "properties": {"sessionId": {"type": "string"}, "port": {"type": "integer", "minimum": 1, "maximum": 65535}}}
            }
        },
        "security": [{"bearer": []}],
        "paths": {
            "/api/health": {"get": {"summary": "Health", "security": [], "responses": {"200": {"description": "Status", "content": {"application/json": {"schema": {"type": "object", "properties": {
                "status": {"type": "string", "enum": ["ok", "degraded"]}, "docker": {"type": "string", "enum": ["connected", "disconnected"]}, "uptime": {"type": "integer"}}}}}}}}},
            "/api/containers": {
                "post": {"summary": "Create a session", "requestBody": {"content": {"application/json": {"schema": {"$ref": "#/components/schemas/CreateRequest"}}}},
                    "responses": {"200": {"description": "Created", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Created"}}}},
                        "400": error_response("Invalid parameters"), "401": error_response("Missing or wrong token"), "413": error_response("Body too large"),
                        "429": error_response("Rate limited"), "500": error_response("Container creation failed"), "503": error_response("Docker unavailable")}},
                "get": {"summary": "The caller's sessions", "responses": {"200": {"description": "Sessions", "content": {"application/json": {"schema": {"type": "array", "items": {"$ref": "#/components/schemas/Session"}}}}}}}
            },
            "/api/containers/{sessionId}": {
                "parameters": [session_id],
                "get": {"summary": "Inspect a session", "responses": {"200": {"description": "Session", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Session"}}}}, "404": error_response("Session not found")}},
                "delete": {"summary": "Remove a session and its container", "responses": {"200": {"description": "Removed"}, "404": error_response("Session not found"), "503": error_response("Docker unavailable")}}
            },
            "/api/preview/configure": {"post": {"summary": "Point the session's preview at a port of its container",
                "requestBody": {"content": {"application/json": {"schema": {"$ref": "#/components/schemas/PreviewRequest"}}}},
                "responses": {"200": {"description": "Configured", "content": {"application/json": {"schema": {"type": "object", "properties": {"previewUrl": {"type": "string"}, "targetUrl": {"type": "string"}}}}}},
                    "400": error_response("Invalid session or port"), "404": error_response("Session not found")}}},
            "/metrics": {"get": {"summary": "Prometheus metrics", "security": [], "responses": {"200": {"description": "Text exposition format"}}}}
        }
    }))
}
