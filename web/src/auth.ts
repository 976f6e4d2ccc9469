// The API token: kept for this tab only (sessionStorage), never in
// localStorage and never in a URL.

const KEY = 'claude-studio.token';
let memory: string | null = null;

export function getToken(): string | null {
  if (memory !== null) return memory;
  try {
    memory = sessionStorage.getItem(KEY);
  } catch {
    memory = null;
  }
  return memory;
}

export function setToken(token: string | null): void {
  memory = token;
  try {
    if (token === null) sessionStorage.removeItem(KEY);
    else sessionStorage.setItem(KEY, token);
  } catch {
    // Storage may be disabled; the token then lives in memory only.
  }
}
