// Generated from the java17 runtime's Bootstrap.java (sha256 83c379a462f0) by hyac. Do not edit.
// The members a function's handle(Context context) can use; docs/runtimes.md.
import java.util.List;
import java.util.Map;

/**
 * What a function's handle(Context context) receives: the request, the function's
 * settings, and the host calls. Declared for javac and IDEs in api/Context.java.
 */
public class Context {
    /** The HTTP request that started this invocation. */
    public final Request request;
    /** This function's environment (hyac.toml's env and `hyac env set`). */
    public final Map<String, String> env;
    /** Log lines of this invocation (hyac logs). */
    public final Logger logger;
    /** The tenant's key-value store. */
    public final KV kv;
    /** The tenant's object storage. */
    public final Storage storage;
    /** The tenant's SQL database. */
    public final Db db;
    /** The tenant's secrets (values are redacted from logs). */
    public final Secrets secrets;
    /** Which function, version and request this is. */
    public final FunctionInfo function;
    /** The background task this run belongs to, or null. */
    public final Task task;
    /** When the invocation times out (Unix seconds). */
    public final double deadline;
    /** Seconds left before the invocation times out. */
    public double remainingTime() { throw new UnsupportedOperationException(); }
    /** Call another function of the tenant with a JSON body (POST /); its response, any status. */
    public InvokeResponse invoke(String function, Object payload) { throw new UnsupportedOperationException(); }
    /** Call another function of the tenant with a method, path and raw body. */
    public InvokeResponse invoke(String function, String method, String path, byte[] body) { throw new UnsupportedOperationException(); }
    /** Queue a background task of a function of the tenant; its task id. */
    public String enqueue(String function, Object payload, double delaySeconds) { throw new UnsupportedOperationException(); }
    /** Queue a background task to run now. */
    public String enqueue(String function, Object payload) { throw new UnsupportedOperationException(); }
    /** A host call (context.kv …) was refused or failed on the host side. */
    public static class HostCallError extends RuntimeException {
        /** Machine-readable reason, e.g. "forbidden", "quota_exceeded" (docs/api.md, "Error codes"). */
        public final String code;
        /** Further fields the host sent, e.g. quota, limit and use of a "quota_exceeded". */
        public final Map<String, Object> details;
        public HostCallError(String code, String message, Map<String, Object> details) { throw new UnsupportedOperationException(); }
    }
    /** The HTTP request of this invocation. */
    public static class Request {
        public final String method;
        public final String path;
        public final Map<String, String> query;
        /** Header names in lower case. */
        public final Map<String, String> headers;
        public final byte[] body;
        public final String clientIp;
        public final String id;
        /** The body as UTF-8 text. */
        public String text() { throw new UnsupportedOperationException(); }
        /** The body parsed as JSON (Map, List, String, Long, Double, Boolean or null). */
        public Object json() { throw new UnsupportedOperationException(); }
        private Request() { throw new UnsupportedOperationException(); }
    }
    /** Log lines of this invocation, with a level. */
    public static class Logger {
        public void debug(String message, Object... args) { throw new UnsupportedOperationException(); }
        public void info(String message, Object... args) { throw new UnsupportedOperationException(); }
        public void warning(String message, Object... args) { throw new UnsupportedOperationException(); }
        public void error(String message, Object... args) { throw new UnsupportedOperationException(); }
        private Logger() { throw new UnsupportedOperationException(); }
    }
    /** The tenant's key-value store: JSON values under string keys. */
    public static class KV {
        /** The value under key, or null. */
        public Object get(String key) { throw new UnsupportedOperationException(); }
        /** The value under key, or fallback when there is none. */
        public Object get(String key, Object fallback) { throw new UnsupportedOperationException(); }
        public void set(String key, Object value) { throw new UnsupportedOperationException(); }
        /** Whether the key existed. */
        public boolean delete(String key) { throw new UnsupportedOperationException(); }
        public List<String> list(String prefix, int limit) { throw new UnsupportedOperationException(); }
        public List<String> list(String prefix) { throw new UnsupportedOperationException(); }
        private KV() { throw new UnsupportedOperationException(); }
    }
    /** The tenant's object storage (keys and limits: docs/api.md, "Object storage"). */
    public static class Storage {
        /** Store bytes under key; the object's metadata (key, size, content_type, sha256, updated_at). */
        public Map<String, Object> put(String key, byte[] data, String contentType) { throw new UnsupportedOperationException(); }
        /** The object's bytes, or null. */
        public byte[] get(String key) { throw new UnsupportedOperationException(); }
        /** The object's metadata, or null. */
        public Map<String, Object> stat(String key) { throw new UnsupportedOperationException(); }
        public boolean delete(String key) { throw new UnsupportedOperationException(); }
        public List<Map<String, Object>> list(String prefix, int limit) { throw new UnsupportedOperationException(); }
        private Storage() { throw new UnsupportedOperationException(); }
    }
    /** The tenant's SQL database (SQLite or PostgreSQL). */
    public static class Db {
        /** Run a statement; rows changed. */
        public long execute(String sql, Object... params) { throw new UnsupportedOperationException(); }
        /** Run a query; its rows, each a Map of column to value. */
        public List<Map<String, Object>> fetchall(String sql, Object... params) { throw new UnsupportedOperationException(); }
        public void begin() { throw new UnsupportedOperationException(); }
        public void commit() { throw new UnsupportedOperationException(); }
        public void rollback() { throw new UnsupportedOperationException(); }
        private Db() { throw new UnsupportedOperationException(); }
    }
    /** The tenant's secrets. */
    public static class Secrets {
        /** The secret's value, or null. */
        public String get(String name) { throw new UnsupportedOperationException(); }
        public List<String> list() { throw new UnsupportedOperationException(); }
        private Secrets() { throw new UnsupportedOperationException(); }
    }
    /** Which function, version and request this is. */
    public static class FunctionInfo {
        public final String tenant;
        public final String name;
        public final long version;
        public final String sha256;
        public final String runtime;
        public final String requestId;
        private FunctionInfo() { throw new UnsupportedOperationException(); }
    }
    /** The background task a run belongs to. */
    public static class Task {
        public final String id;
        public final int attempt;
        /** Record progress: fraction from 0 to 1, and a message. */
        public void progress(double fraction, String message) { throw new UnsupportedOperationException(); }
        private Task() { throw new UnsupportedOperationException(); }
    }
    /** What a function called with invoke() answered. */
    public static class InvokeResponse {
        public final int status;
        public final Map<String, String> headers;
        public final byte[] body;
        public final String requestId;
        public final long version;
        public boolean ok() { throw new UnsupportedOperationException(); }
        public String text() { throw new UnsupportedOperationException(); }
        /** The body parsed as JSON. */
        public Object json() { throw new UnsupportedOperationException(); }
        private InvokeResponse() { throw new UnsupportedOperationException(); }
    }
    /** An HTTP response with a status and headers; the body a String, byte[] or JSON value. */
    public static class Response {
        public final int status;
        public final Map<String, String> headers;
        public final Object body;
        public Response(int status, Map<String, String> headers, Object body) { throw new UnsupportedOperationException(); }
        public Response(int status, Object body) { throw new UnsupportedOperationException(); }
    }
    private Context() { throw new UnsupportedOperationException(); }
}
