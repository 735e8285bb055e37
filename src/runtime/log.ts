// Structured logs as JSON lines on stderr. Debug is off unless LOG_LEVEL=debug: nothing on the hot
// path logs at info.
type Level = 'debug' | 'info' | 'warn' | 'error';
const ORDER: Record<Level, number> = { debug: 10, info: 20, warn: 30, error: 40 };

export interface Logger {
  debug(msg: string, fields?: Record<string, unknown>): void;
  info(msg: string, fields?: Record<string, unknown>): void;
  warn(msg: string, fields?: Record<string, unknown>): void;
  error(msg: string, fields?: Record<string, unknown>): void;
  child(fields: Record<string, unknown>): Logger;
}

function errorFields(fields: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(fields)) out[k] = v instanceof Error ? v.message : v;
  return out;
}

export function createLogger(base: Record<string, unknown> = {}, level: Level = (process.env.LOG_LEVEL as Level | undefined) ?? 'info'): Logger {
  const min = ORDER[level] ?? ORDER.info;
  const write = (lvl: Level, msg: string, fields?: Record<string, unknown>) => {
    if (ORDER[lvl] < min) return;
    process.stderr.write(JSON.stringify({ ts: new Date().toISOString(), level: lvl, msg, ...base, ...errorFields(fields ?? {}) }) + '\n');
  };
  return {
    debug: (m, f) => { write('debug', m, f); },
    info: (m, f) => { write('info', m, f); },
    warn: (m, f) => { write('warn', m, f); },
    error: (m, f) => { write('error', m, f); },
    child: (f) => createLogger({ ...base, ...f }, level),
  };
}
