// Hyac's Java worker (OpenJDK 17+): compiles one function's .java files in memory, loads
// them and serves their invocations over the channel of docs/protocol.md.
//
// Started inside the sandbox as `java FLAGS -cp PREBUILT/bootstrap.jar Bootstrap`, from
// the jar the agent builds once with `java Bootstrap.java --build Bootstrap.java OUT`
// (where it cannot, workers run this file in the JDK's source-file mode, which compiles
// it at every start); `--train`, the bootstrap's own work without a function, is the
// run whose classes the agent archives for class data sharing. The channel is the unix socket at HYAC_CHANNEL_PATH (a JVM cannot
// adopt an inherited socket). `--check CODE_DIR ENTRY` compiles a function without
// running it and prints the first error as JSON: the agent's deploy-time check. No
// dependencies beyond the JDK.
//
// The Context API a function sees is the public part of the Context class below; its
// declaration for javac and IDEs is api/Context.java beside this file (tests hold the two
// to the same members). Exit codes: 0 after `shutdown` or when the channel closes, 1 after
// `init_error`, 2 when the agent breaks the protocol.

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.io.PrintStream;
import java.lang.reflect.InvocationTargetException;
import java.lang.reflect.Method;
import java.lang.reflect.Modifier;
import java.net.StandardProtocolFamily;
import java.net.URI;
import java.net.URL;
import java.net.URLClassLoader;
import java.net.UnixDomainSocketAddress;
import java.nio.ByteBuffer;
import java.nio.channels.Channels;
import java.nio.channels.SocketChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.Paths;
import java.util.ArrayList;
import java.util.Base64;
import java.util.Collections;
import java.util.HashMap;
import java.util.Iterator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.TreeMap;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicLong;
import java.util.jar.JarEntry;
import java.util.jar.JarOutputStream;
import java.util.stream.Collectors;
import java.util.stream.Stream;
import javax.tools.Diagnostic;
import javax.tools.DiagnosticCollector;
import javax.tools.FileObject;
import javax.tools.ForwardingJavaFileManager;
import javax.tools.JavaCompiler;
import javax.tools.JavaFileObject;
import javax.tools.SimpleJavaFileObject;
import javax.tools.StandardJavaFileManager;
import javax.tools.StandardLocation;
import javax.tools.ToolProvider;

public class Bootstrap {
    // The worker protocol this bootstrap speaks: hyac_common/protocol.py's, held to it by a test.
    static final String PROTOCOL_VERSION = "1.0";
    static final int MAX_FRAME = 64 * 1024 * 1024;
    static final int MAX_LOG_LINE = 256 * 1024;
    static final PrintStream RAW_ERR = System.err;

    static void die(int code, String reason) {
        if (reason != null) RAW_ERR.println("hyac worker: " + reason);
        RAW_ERR.flush();
        Runtime.getRuntime().halt(code);
    }

    public static void main(String[] args) throws Exception {
        if (args.length >= 3 && args[0].equals("--check")) {
            check(Paths.get(args[1]), args[2], args.length > 3 ? Paths.get(args[3]) : null);
            return;
        }
        if (args.length == 3 && args[0].equals("--build")) {
            System.exit(Compiler.build(Paths.get(args[1]), Paths.get(args[2])) ? 0 : 1);
        }
        if (args.length == 1 && args[0].equals("--train")) {
            train();
            return;
        }
        String path = System.getenv("HYAC_CHANNEL_PATH");
        if (path == null || path.isEmpty()) die(2, "no channel: HYAC_CHANNEL_PATH is not set");
        SocketChannel socket = SocketChannel.open(StandardProtocolFamily.UNIX);
        socket.connect(UnixDomainSocketAddress.of(path));
        // A generic (pooled) worker warms the compiler while it waits for its function.
        Thread warm = new Thread(Compiler::warm, "hyac-warm");
        warm.setDaemon(true);
        warm.start();
        Channel channel = new Channel(socket);
        Map<String, Object> init = channel.read();
        Compiler.initialised = true;
        if (init == null) die(0, null);
        if (!"init".equals(init.get("type"))) die(2, "protocol error: expected init, got " + init.get("type"));
        Worker worker = new Worker(channel, init);
        if (!worker.load()) {
            System.out.flush();
            die(1, null);
        }
        channel.serve(worker);
    }

    /** Load what a worker loads, without a channel or a function: javac on a function of
     * the bootstrap's own, JSON, the worker's classes. The agent archives the classes of
     * this run (and of no run that saw a tenant's code) for class data sharing. */
    static void train() throws Exception {
        Compiler.warm();
        Json.parse(Json.write(Map.of("type", "ready", "list", List.of(1, 2.5, "x", true))));
        for (String name : List.of("Worker", "Channel", "Output", "Context", "Compiler$Memory")) {
            Class.forName(name, false, Bootstrap.class.getClassLoader());
        }
    }

    /** The deploy-time check: compile, print the first error as JSON, exit 1 on one; with
     * ``out``, write the classes there (they travel in the bundle, so workers load them
     * without compiling). */
    static void check(Path codeDir, String entry, Path out) throws IOException {
        try {
            Compiler.Memory memory = Compiler.compile(codeDir, entry);
            if (out != null) memory.save(out);
        } catch (CompileError err) {
            Map<String, Object> info = new LinkedHashMap<>();
            info.put("path", err.path);
            info.put("line", err.line);
            info.put("message", err.getMessage());
            System.out.println(Json.write(info));
            System.exit(1);
        }
    }
}

/** A function's source did not compile: the first error, with its file and line. */
class CompileError extends Exception {
    final String path;
    final long line;

    CompileError(String path, long line, String message) {
        super(message);
        this.path = path;
        this.line = line;
    }
}

/** javac in memory: the function's sources against the Context API and its jars. */
final class Compiler {
    /** Where a deploy puts the compiled classes, relative to the code directory. */
    static final String CLASSES = ".hyac/classes";
    static final Path API = Paths.get(System.getProperty("hyac.api",
            Paths.get(System.getProperty("jdk.internal.java.source.file", "/runtime/Bootstrap.java"))
                    .toAbsolutePath().getParent().resolve("api").toString()));

    /** Warm javac (class loading, C1) with a function shaped like a user's, against the
     * Context API: a pooled worker's first real compile then takes a fraction of the time. */
    /** Set when the function arrives: a worker that was not waiting stops warming up. */
    static volatile boolean initialised;

    static void warm() {
        String source = "import java.util.*;\n"
                + "public class HyacWarm {\n"
                + "  public static Object handle(Context context) {\n"
                + "    Map<String, Object> out = new LinkedHashMap<>();\n"
                + "    List<String> keys = new ArrayList<>(context.kv.list(\"a\"));\n"
                + "    keys.sort(Comparator.naturalOrder());\n"
                + "    for (String k : keys) out.put(k, context.kv.get(k, 0));\n"
                + "    context.logger.info(\"%s %d\", context.request.path, keys.size());\n"
                + "    Runnable r = () -> out.put(\"x\", String.valueOf(context.remainingTime()));\n"
                + "    r.run();\n"
                + "    return Map.of(\"out\", out, \"n\", keys.stream().mapToInt(String::length).sum());\n"
                + "  }\n"
                + "}\n";
        for (int round = 0; round < 1 && !initialised; round++) {
            try {
                JavaCompiler javac = ToolProvider.getSystemJavaCompiler();
                StandardJavaFileManager files = javac.getStandardFileManager(null, Locale.ROOT, StandardCharsets.UTF_8);
                Memory memory = new Memory(files);
                JavaFileObject file = new SimpleJavaFileObject(URI.create("string:///HyacWarm.java"),
                        JavaFileObject.Kind.SOURCE) {
                    @Override
                    public CharSequence getCharContent(boolean ignore) {
                        return source;
                    }
                };
                javac.getTask(null, memory, d -> { }, options(), null, List.of(file)).call();
            } catch (Throwable ignored) {
                return;  // only a warm-up: the real compile reports its own failures
            }
        }
    }

    /** Compile this file (``self``, run in source-file mode) for Java 17 into
     * ``out/bootstrap.jar``: the agent does it once, and its workers start from it instead
     * of compiling the bootstrap at every JVM start (a jar, since class data sharing
     * archives classes from jars only). */
    static boolean build(Path self, Path out) throws IOException {
        String source = Files.readString(self);
        // One file holding several public classes, as source-file mode allows.
        JavaFileObject file = new SimpleJavaFileObject(self.toUri(), JavaFileObject.Kind.SOURCE) {
            @Override
            public CharSequence getCharContent(boolean ignore) {
                return source;
            }

            @Override
            public boolean isNameCompatible(String simpleName, JavaFileObject.Kind kind) {
                return true;
            }
        };
        List<String> options = List.of("--release", "17", "-g", "-proc:none", "-nowarn", "-Xlint:none");
        JavaCompiler javac = ToolProvider.getSystemJavaCompiler();
        Memory memory = new Memory(javac.getStandardFileManager(null, Locale.ROOT, StandardCharsets.UTF_8));
        if (!javac.getTask(null, memory, null, options, null, List.of(file)).call()) return false;
        Files.createDirectories(out);
        try (JarOutputStream jar = new JarOutputStream(Files.newOutputStream(out.resolve("bootstrap.jar")))) {
            for (Map.Entry<String, ByteArrayOutputStream> e : new TreeMap<>(memory.classes).entrySet()) {
                jar.putNextEntry(new JarEntry(e.getKey().replace('.', '/') + ".class"));
                e.getValue().writeTo(jar);
                jar.closeEntry();
            }
        }
        return true;
    }

    static List<String> options() throws IOException {
        List<String> options = new ArrayList<>(List.of("-proc:none", "-implicit:none", "-g",
                "-encoding", "UTF-8", "-Xlint:none", "-nowarn", "-sourcepath", API.toString()));
        String classpath = jars().stream().map(Path::toString).collect(Collectors.joining(":"));
        if (!classpath.isEmpty()) options.addAll(List.of("-classpath", classpath));
        return options;
    }

    /** The .java files of a function: the entry alone, or every one in its folder's tree. */
    static List<Path> sources(Path codeDir, String entry) throws IOException {
        Path file = codeDir.resolve(entry).normalize();
        Path folder = file.getParent();
        if (folder == null || Paths.get(entry).getNameCount() <= 2) return List.of(file);
        try (Stream<Path> walk = Files.walk(folder)) {
            return walk.filter(p -> p.toString().endsWith(".java")).sorted().collect(Collectors.toList());
        }
    }

    static List<Path> jars() throws IOException {
        String deps = System.getenv("HYAC_JAVA_DEPS");
        if (deps == null || deps.isEmpty()) return List.of();
        Path lib = Paths.get(deps, "lib");
        if (!Files.isDirectory(lib)) return List.of();
        try (Stream<Path> list = Files.list(lib)) {
            return list.filter(p -> p.toString().endsWith(".jar")).sorted().collect(Collectors.toList());
        }
    }

    /** Compiled classes by binary name, and each class's source path relative to the code. */
    static Memory compile(Path codeDir, String entry) throws IOException, CompileError {
        JavaCompiler javac = ToolProvider.getSystemJavaCompiler();
        if (javac == null) throw new CompileError(entry, 0, "no Java compiler in this runtime (a JDK, not a JRE, is needed)");
        List<Path> paths = sources(codeDir, entry);
        for (Path p : paths) {
            if (!Files.isRegularFile(p)) throw new CompileError(entry, 0, "no such file: " + entry);
        }
        DiagnosticCollector<JavaFileObject> diagnostics = new DiagnosticCollector<>();
        StandardJavaFileManager files = javac.getStandardFileManager(diagnostics, Locale.ROOT, StandardCharsets.UTF_8);
        Memory memory = new Memory(files);
        Boolean ok = javac.getTask(null, memory, diagnostics, options(), null,
                files.getJavaFileObjectsFromPaths(paths)).call();
        if (!ok) {
            for (Diagnostic<? extends JavaFileObject> d : diagnostics.getDiagnostics()) {
                if (d.getKind() != Diagnostic.Kind.ERROR) continue;
                String where = d.getSource() == null ? entry
                        : relative(codeDir, Paths.get(d.getSource().toUri()));
                String message = d.getMessage(Locale.ROOT).split("\n", 2)[0];
                throw new CompileError(where, Math.max(d.getLineNumber(), 0), message);
            }
            throw new CompileError(entry, 0, "the Java compiler failed");
        }
        for (Path p : paths) memory.sources.put(p.getFileName().toString(), relative(codeDir, p));
        return memory;
    }

    static String relative(Path codeDir, Path file) {
        Path abs = file.toAbsolutePath().normalize();
        Path base = codeDir.toAbsolutePath().normalize();
        return abs.startsWith(base) ? base.relativize(abs).toString() : abs.getFileName().toString();
    }

    /** Class files kept in memory (the code directory is read-only). */
    static final class Memory extends ForwardingJavaFileManager<StandardJavaFileManager> {
        final Map<String, ByteArrayOutputStream> classes = new ConcurrentHashMap<>();
        final Map<String, String> sources = new HashMap<>();

        Memory(StandardJavaFileManager files) {
            super(files);
        }

        @Override
        public JavaFileObject getJavaFileForOutput(Location location, String name, JavaFileObject.Kind kind,
                                                   FileObject sibling) {
            return new SimpleJavaFileObject(URI.create("mem:///" + name.replace('.', '/') + kind.extension), kind) {
                @Override
                public OutputStream openOutputStream() {
                    ByteArrayOutputStream out = new ByteArrayOutputStream();
                    classes.put(name, out);
                    return out;
                }
            };
        }

        /** Write the classes as OUT/NAME.class, and the sources map as OUT/sources.json. */
        void save(Path out) throws IOException {
            Files.createDirectories(out);
            for (Map.Entry<String, ByteArrayOutputStream> e : classes.entrySet()) {
                Files.write(out.resolve(e.getKey() + ".class"), e.getValue().toByteArray());
            }
            Files.writeString(out.resolve("sources.json"), Json.write(sources));
        }

        /** Classes a deploy saved, or null when there are none. */
        @SuppressWarnings("unchecked")
        static Memory load(Path folder) throws IOException {
            Path index = folder.resolve("sources.json");
            if (!Files.isRegularFile(index)) return null;
            Memory memory = new Memory(ToolProvider.getSystemJavaCompiler().getStandardFileManager(null, Locale.ROOT, StandardCharsets.UTF_8));
            Object sources = Json.parse(Files.readString(index));
            if (sources instanceof Map) {
                ((Map<String, Object>) sources).forEach((k, v) -> memory.sources.put(k, String.valueOf(v)));
            }
            try (Stream<Path> list = Files.list(folder)) {
                for (Path file : (Iterable<Path>) list::iterator) {
                    String name = file.getFileName().toString();
                    if (!name.endsWith(".class")) continue;
                    ByteArrayOutputStream bytes = new ByteArrayOutputStream();
                    bytes.write(Files.readAllBytes(file));
                    memory.classes.put(name.substring(0, name.length() - ".class".length()), bytes);
                }
            }
            return memory;
        }

        ClassLoader loader(List<Path> jars) throws IOException {
            URL[] urls = new URL[jars.size()];
            for (int i = 0; i < urls.length; i++) urls[i] = jars.get(i).toUri().toURL();
            // Parent: the bootstrap's loader, where Context is; the function's jars beside it.
            ClassLoader parent = new URLClassLoader(urls, Bootstrap.class.getClassLoader());
            return new ClassLoader(parent) {
                @Override
                protected Class<?> findClass(String name) throws ClassNotFoundException {
                    ByteArrayOutputStream out = classes.get(name);
                    if (out == null) throw new ClassNotFoundException(name);
                    byte[] bytes = out.toByteArray();
                    return defineClass(name, bytes, 0, bytes.length);
                }
            };
        }
    }
}

/** Framed JSON over the unix socket; host calls wait on futures keyed by call number. */
final class Channel {
    private final InputStream in;
    private final SocketChannel socket;
    private final AtomicLong calls = new AtomicLong();
    private final Map<Long, CompletableFuture<Map<String, Object>>> pending = new ConcurrentHashMap<>();

    Channel(SocketChannel socket) {
        this.socket = socket;
        this.in = Channels.newInputStream(socket);
    }

    @SuppressWarnings("unchecked")
    Map<String, Object> read() throws IOException {
        byte[] header = in.readNBytes(4);
        if (header.length < 4) return null;
        long length = ByteBuffer.wrap(header).getInt() & 0xffffffffL;
        if (length > Bootstrap.MAX_FRAME) Bootstrap.die(2, "protocol error: frame of " + length + " bytes");
        byte[] payload = in.readNBytes((int) length);
        if (payload.length < length) return null;
        Object message;
        try {
            message = Json.parse(new String(payload, StandardCharsets.UTF_8));
        } catch (RuntimeException err) {
            Bootstrap.die(2, "protocol error: frame is not JSON: " + err.getMessage());
            return null;
        }
        if (!(message instanceof Map) || !(((Map<String, Object>) message).get("type") instanceof String)) {
            Bootstrap.die(2, "protocol error: frame without a string 'type'");
        }
        return (Map<String, Object>) message;
    }

    void send(Map<String, Object> message) {
        byte[] data = Json.write(message).getBytes(StandardCharsets.UTF_8);
        if (data.length > Bootstrap.MAX_FRAME) {
            throw new IllegalArgumentException("message of " + data.length + " bytes exceeds 64 MiB");
        }
        ByteBuffer buffer = ByteBuffer.allocate(4 + data.length);
        buffer.putInt(data.length).put(data).flip();
        synchronized (this) {
            try {
                while (buffer.hasRemaining()) socket.write(buffer);
            } catch (IOException err) {
                Bootstrap.die(0, null);
            }
        }
    }

    void serve(Worker worker) throws IOException {
        while (true) {
            Map<String, Object> message = read();
            if (message == null) Bootstrap.die(0, null);
            String type = (String) message.get("type");
            if (type.equals("hostcall_result")) {
                Object call = message.get("call");
                CompletableFuture<Map<String, Object>> waiter =
                        call instanceof Number ? pending.remove(((Number) call).longValue()) : null;
                if (waiter != null) waiter.complete(message);
            } else if (type.equals("invoke")) {
                worker.invoke(message);
            } else if (type.equals("shutdown")) {
                worker.shutdown();
            } else {
                Bootstrap.die(2, "protocol error: unexpected frame type " + type);
            }
        }
    }

    /** A host call made for request ``id``: its value, or Context.HostCallError. */
    @SuppressWarnings("unchecked")
    Object call(String id, String op, Map<String, Object> args) {
        long call = calls.incrementAndGet();
        CompletableFuture<Map<String, Object>> waiter = new CompletableFuture<>();
        pending.put(call, waiter);
        Map<String, Object> frame = new LinkedHashMap<>();
        frame.put("type", "hostcall");
        frame.put("id", id);
        frame.put("call", call);
        frame.put("op", op);
        frame.put("args", args);
        try {
            send(frame);
        } catch (RuntimeException err) {
            pending.remove(call);
            throw err;
        }
        Map<String, Object> result;
        try {
            result = waiter.get();
        } catch (InterruptedException err) {
            Thread.currentThread().interrupt();
            throw new IllegalStateException("interrupted while waiting for " + op);
        } catch (ExecutionException err) {
            throw new IllegalStateException(err.getCause());
        }
        if (Boolean.TRUE.equals(result.get("ok"))) return result.get("value");
        Object error = result.get("error");
        throw Context.HostCallError.of(error instanceof Map ? (Map<String, Object>) error : Map.of());
    }

    void log(String id, String stream, String level, String text) {
        if (text.length() > Bootstrap.MAX_LOG_LINE) text = text.substring(0, Bootstrap.MAX_LOG_LINE) + " ...[truncated]";
        Map<String, Object> frame = new LinkedHashMap<>();
        frame.put("type", "log");
        frame.put("id", id);
        frame.put("stream", stream);
        if (level != null) frame.put("level", level);
        frame.put("message", text);
        send(frame);
    }
}

/** System.out and System.err as log frames, line by line, tagged with the thread's request. */
final class Output extends OutputStream {
    static final InheritableThreadLocal<String> REQUEST = new InheritableThreadLocal<>();
    private final Channel channel;
    private final String stream;
    private final Map<String, ByteArrayOutputStream> partial = new ConcurrentHashMap<>();

    Output(Channel channel, String stream) {
        this.channel = channel;
        this.stream = stream;
    }

    private static String key() {
        String id = REQUEST.get();
        return id == null ? "" : id;
    }

    @Override
    public void write(int b) {
        String key = key();
        ByteArrayOutputStream line = partial.computeIfAbsent(key, k -> new ByteArrayOutputStream());
        if (b == '\n') {
            partial.remove(key);
            channel.log(key.isEmpty() ? null : key, stream, null, line.toString(StandardCharsets.UTF_8));
        } else {
            line.write(b);
        }
    }

    @Override
    public void write(byte[] b, int off, int len) {
        for (int i = off; i < off + len; i++) write(b[i]);
    }

    void end(String id) {
        ByteArrayOutputStream rest = partial.remove(id == null ? "" : id);
        if (rest != null && rest.size() > 0) channel.log(id, stream, null, rest.toString(StandardCharsets.UTF_8));
    }
}

/** One function, loaded: its handler, and the invocations in flight. */
final class Worker {
    private final Channel channel;
    private final Map<String, Object> function;
    private final Path codeDir;
    private final String entry;
    private final String handlerName;
    final Map<String, String> env;
    private final double timeout;
    private final Output out;
    private final Output err;
    private final ExecutorService pool = Executors.newCachedThreadPool(r -> {
        Thread t = new Thread(r);
        t.setDaemon(true);
        return t;
    });
    private final AtomicInteger inFlight = new AtomicInteger();
    private volatile boolean stopping;
    private Method handler;
    private Object instance;
    private Map<String, String> sources = Map.of();

    @SuppressWarnings("unchecked")
    Worker(Channel channel, Map<String, Object> init) {
        this.channel = channel;
        Object fn = init.get("function");
        Object entryValue = init.get("entry");
        if (!(fn instanceof Map) || !(entryValue instanceof String) || ((String) entryValue).isEmpty()) {
            Bootstrap.die(2, "protocol error: init needs a 'function' object and an 'entry' path");
        }
        this.function = (Map<String, Object>) fn;
        this.entry = (String) entryValue;
        Object code = init.getOrDefault("code_dir", System.getenv("HYAC_CODE_DIR"));
        this.codeDir = Paths.get(String.valueOf(code));
        Object handlerValue = init.get("handler");
        // The protocol's default handler is Python's `main`; a Java class's is `handle`.
        String name = handlerValue instanceof String ? (String) handlerValue : "main";
        this.handlerName = name.equals("main") ? "handle" : name;
        Map<String, String> values = new LinkedHashMap<>();
        Object envValue = init.get("env");
        if (envValue instanceof Map) {
            for (Map.Entry<String, Object> e : ((Map<String, Object>) envValue).entrySet()) {
                values.put(e.getKey(), String.valueOf(e.getValue()));
            }
        }
        this.env = Collections.unmodifiableMap(values);
        Object t = init.get("timeout");
        this.timeout = t instanceof Number ? ((Number) t).doubleValue() : 30.0;
        this.out = new Output(channel, "stdout");
        this.err = new Output(channel, "stderr");
        System.setOut(new PrintStream(out, true, StandardCharsets.UTF_8));
        System.setErr(new PrintStream(err, true, StandardCharsets.UTF_8));
    }

    boolean load() {
        try {
            // Classes compiled at deploy travel in the bundle; else (an older version, a
            // bundle sent without them) compile now.
            Compiler.Memory memory = Compiler.Memory.load(codeDir.resolve(Compiler.CLASSES));
            if (memory == null) memory = Compiler.compile(codeDir, entry);
            sources = memory.sources;
            String className = Paths.get(entry).getFileName().toString().replaceFirst("\\.java$", "");
            ClassLoader loader = memory.loader(Compiler.jars());
            Class<?> cls;
            try {
                cls = Class.forName(className, true, loader);
            } catch (ClassNotFoundException missing) {
                throw new CompileError(entry, 0, entry + " declares no class " + className
                        + " (a function's class is named after its file, in no package)");
            }
            for (Method m : cls.getMethods()) {
                if (m.getName().equals(handlerName) && m.getParameterCount() == 1
                        && m.getParameterTypes()[0] == Context.class) {
                    handler = m;
                }
            }
            if (handler == null) {
                throw new CompileError(entry, 0, entry + ": class " + className + " has no public "
                        + handlerName + "(Context context) method");
            }
            if (!Modifier.isStatic(handler.getModifiers())) instance = cls.getConstructor().newInstance();
        } catch (Throwable failure) {
            out.end(null);
            err.end(null);
            Map<String, Object> frame = new LinkedHashMap<>();
            frame.put("type", "init_error");
            frame.put("protocol", Bootstrap.PROTOCOL_VERSION);
            frame.put("error", describe(failure));
            channel.send(frame);
            return false;
        }
        Map<String, Object> ready = new LinkedHashMap<>();
        ready.put("type", "ready");
        ready.put("protocol", Bootstrap.PROTOCOL_VERSION);
        ready.put("pid", ProcessHandle.current().pid());
        ready.put("runtime_version", System.getProperty("java.version"));
        channel.send(ready);
        return true;
    }

    void shutdown() {
        stopping = true;
        if (inFlight.get() == 0) Bootstrap.die(0, null);
    }

    @SuppressWarnings("unchecked")
    void invoke(Map<String, Object> message) {
        Object idValue = message.get("id");
        if (!(idValue instanceof String) || ((String) idValue).isEmpty()) {
            Bootstrap.die(2, "protocol error: invoke without an id");
        }
        String id = (String) idValue;
        inFlight.incrementAndGet();
        pool.execute(() -> {
            Output.REQUEST.set(id);
            Map<String, Object> result = new LinkedHashMap<>();
            result.put("type", "result");
            result.put("id", id);
            try {
                Object request = message.get("request");
                if (!(request instanceof Map)) throw new MalformedRequest("the request is not an object");
                Object deadline = message.get("deadline");
                double when = deadline instanceof Number ? ((Number) deadline).doubleValue()
                        : System.currentTimeMillis() / 1000.0 + timeout;
                Context context = new Context(channel, id, (Map<String, Object>) request, function, env, when,
                        message.get("task") instanceof Map ? (Map<String, Object>) message.get("task") : null);
                Object value = handler.invoke(instance, context);
                result.put("ok", true);
                result.put("response", Context.Response.toWire(value));
            } catch (Throwable failure) {
                result.put("ok", false);
                result.put("error", describe(failure));
            }
            out.end(id);
            err.end(id);
            try {
                channel.send(result);
            } catch (IllegalArgumentException tooLarge) {
                Map<String, Object> error = new LinkedHashMap<>();
                error.put("type", "OutputTooLarge");
                error.put("message", "response too large: " + tooLarge.getMessage());
                error.put("traceback", "");
                error.put("code", "output_too_large");
                result.put("ok", false);
                result.remove("response");
                result.put("error", error);
                channel.send(result);
            }
            Output.REQUEST.remove();
            if (inFlight.decrementAndGet() == 0 && stopping) Bootstrap.die(0, null);
        });
    }

    /** An error as the user should see it: their own frames, paths relative to the code. */
    Map<String, Object> describe(Throwable failure) {
        while (failure instanceof InvocationTargetException && failure.getCause() != null) {
            failure = failure.getCause();
        }
        Map<String, Object> error = new LinkedHashMap<>();
        String message = failure.getMessage() == null ? "" : failure.getMessage();
        if (failure instanceof CompileError) {
            CompileError compile = (CompileError) failure;
            error.put("type", "CompileError");
            error.put("message", compile.line > 0 ? compile.path + ":" + compile.line + ": " + message : message);
            error.put("traceback", "");
            return error;
        }
        error.put("type", failure.getClass().getSimpleName());
        error.put("message", message);
        if (failure instanceof OutOfMemoryError) error.put("code", "out_of_memory");
        if (failure instanceof MalformedRequest) error.put("type", "MalformedRequest");
        StringBuilder trace = new StringBuilder();
        trace.append(failure.getClass().getName()).append(message.isEmpty() ? "" : ": " + message).append('\n');
        for (Throwable t = failure; t != null; t = t.getCause() == t ? null : t.getCause()) {
            if (t != failure) trace.append("Caused by: ").append(t.toString()).append('\n');
            for (StackTraceElement frame : t.getStackTrace()) {
                String file = frame.getFileName();
                String path = file == null ? null : sources.get(file);
                if (path == null) continue;  // the runtime's and the JDK's frames are not the user's
                trace.append("  at ").append(frame.getClassName()).append('.').append(frame.getMethodName())
                        .append('(').append(path).append(':').append(frame.getLineNumber()).append(")\n");
            }
        }
        error.put("traceback", trace.toString().stripTrailing());
        return error;
    }

    static final class MalformedRequest extends RuntimeException {
        MalformedRequest(String message) {
            super(message);
        }
    }
}

/** Minimal JSON: objects are LinkedHashMap, arrays ArrayList, numbers Long or Double. */
final class Json {
    private final String s;
    private int i;

    private Json(String s) {
        this.s = s;
    }

    static Object parse(String text) {
        Json p = new Json(text);
        p.space();
        Object value = p.value();
        p.space();
        if (p.i != text.length()) throw new IllegalArgumentException("trailing characters at " + p.i);
        return value;
    }

    private void space() {
        while (i < s.length() && " \t\r\n".indexOf(s.charAt(i)) >= 0) i++;
    }

    private Object value() {
        if (i >= s.length()) throw new IllegalArgumentException("unexpected end");
        char c = s.charAt(i);
        switch (c) {
            case '{': {
                i++;
                Map<String, Object> map = new LinkedHashMap<>();
                space();
                if (s.charAt(i) == '}') { i++; return map; }
                while (true) {
                    space();
                    String key = string();
                    space();
                    expect(':');
                    space();
                    map.put(key, value());
                    space();
                    if (s.charAt(i) == ',') { i++; continue; }
                    expect('}');
                    return map;
                }
            }
            case '[': {
                i++;
                List<Object> list = new ArrayList<>();
                space();
                if (s.charAt(i) == ']') { i++; return list; }
                while (true) {
                    space();
                    list.add(value());
                    space();
                    if (s.charAt(i) == ',') { i++; continue; }
                    expect(']');
                    return list;
                }
            }
            case '"':
                return string();
            case 't': word("true"); return Boolean.TRUE;
            case 'f': word("false"); return Boolean.FALSE;
            case 'n': word("null"); return null;
            default:
                return number();
        }
    }

    private void expect(char c) {
        if (i >= s.length() || s.charAt(i) != c) throw new IllegalArgumentException("expected " + c + " at " + i);
        i++;
    }

    private void word(String w) {
        if (!s.startsWith(w, i)) throw new IllegalArgumentException("bad literal at " + i);
        i += w.length();
    }

    private Object number() {
        int start = i;
        while (i < s.length() && "+-0123456789.eE".indexOf(s.charAt(i)) >= 0) i++;
        String n = s.substring(start, i);
        if (n.isEmpty()) throw new IllegalArgumentException("unexpected character at " + start);
        if (n.contains(".") || n.contains("e") || n.contains("E")) return Double.parseDouble(n);
        try {
            return Long.parseLong(n);
        } catch (NumberFormatException big) {
            return new java.math.BigInteger(n);
        }
    }

    private String string() {
        expect('"');
        StringBuilder b = new StringBuilder();
        while (true) {
            char c = s.charAt(i++);
            if (c == '"') return b.toString();
            if (c != '\\') { b.append(c); continue; }
            char e = s.charAt(i++);
            switch (e) {
                case 'n': b.append('\n'); break;
                case 't': b.append('\t'); break;
                case 'r': b.append('\r'); break;
                case 'b': b.append('\b'); break;
                case 'f': b.append('\f'); break;
                case 'u': b.append((char) Integer.parseInt(s.substring(i, i + 4), 16)); i += 4; break;
                default: b.append(e);
            }
        }
    }

    static String write(Object value) {
        StringBuilder b = new StringBuilder();
        write(b, value);
        return b.toString();
    }

    private static void write(StringBuilder b, Object v) {
        if (v == null) {
            b.append("null");
        } else if (v instanceof String || v instanceof Character) {
            quote(b, v.toString());
        } else if (v instanceof Boolean || v instanceof Integer || v instanceof Long || v instanceof Short
                || v instanceof Byte || v instanceof java.math.BigInteger || v instanceof java.math.BigDecimal) {
            b.append(v);
        } else if (v instanceof Number) {
            double d = ((Number) v).doubleValue();
            if (Double.isNaN(d) || Double.isInfinite(d)) throw new IllegalArgumentException("NaN and infinities are not JSON");
            b.append(d == Math.rint(d) && Math.abs(d) < 1e15 ? Long.toString((long) d) : Double.toString(d));
        } else if (v instanceof Map) {
            b.append('{');
            Iterator<? extends Map.Entry<?, ?>> it = ((Map<?, ?>) v).entrySet().iterator();
            while (it.hasNext()) {
                Map.Entry<?, ?> e = it.next();
                quote(b, String.valueOf(e.getKey()));
                b.append(':');
                write(b, e.getValue());
                if (it.hasNext()) b.append(',');
            }
            b.append('}');
        } else if (v instanceof Iterable) {
            b.append('[');
            Iterator<?> it = ((Iterable<?>) v).iterator();
            while (it.hasNext()) {
                write(b, it.next());
                if (it.hasNext()) b.append(',');
            }
            b.append(']');
        } else if (v instanceof Object[]) {
            write(b, List.of((Object[]) v));
        } else {
            throw new IllegalArgumentException("a " + v.getClass().getName() + " is not JSON-serialisable "
                    + "(use a Map, List, String, Number, Boolean or null)");
        }
    }

    private static void quote(StringBuilder b, String s) {
        b.append('"');
        for (int k = 0; k < s.length(); k++) {
            char c = s.charAt(k);
            switch (c) {
                case '"': b.append("\\\""); break;
                case '\\': b.append("\\\\"); break;
                case '\n': b.append("\\n"); break;
                case '\r': b.append("\\r"); break;
                case '\t': b.append("\\t"); break;
                default:
                    if (c < 0x20) b.append(String.format("\\u%04x", (int) c));
                    else b.append(c);
            }
        }
        b.append('"');
    }
}

/**
 * What a function's handle(Context context) receives: the request, the function's
 * settings, and the host calls. Declared for javac and IDEs in api/Context.java.
 */
public class Context {
    private final Channel host;
    private final String id;
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

    @SuppressWarnings("unchecked")
    Context(Channel host, String id, Map<String, Object> request, Map<String, Object> function,
            Map<String, String> env, double deadline, Map<String, Object> task) {
        this.host = host;
        this.id = id;
        this.request = new Request(request, id);
        this.env = env;
        this.logger = new Logger(this);
        this.kv = new KV(this);
        this.storage = new Storage(this);
        this.db = new Db(this);
        this.secrets = new Secrets(this);
        this.function = new FunctionInfo(function, id);
        this.deadline = deadline;
        this.task = task == null ? null : new Task(this, String.valueOf(task.get("id")),
                task.get("attempt") instanceof Number ? ((Number) task.get("attempt")).intValue() : 1);
    }

    Object call(String op, Object... pairs) {
        Map<String, Object> args = new LinkedHashMap<>();
        for (int k = 0; k + 1 < pairs.length; k += 2) args.put((String) pairs[k], pairs[k + 1]);
        return host.call(id, op, args);
    }

    /** Seconds left before the invocation times out. */
    public double remainingTime() {
        return Math.max(0.0, deadline - System.currentTimeMillis() / 1000.0);
    }

    /** Call another function of the tenant with a JSON body (POST /); its response, any status. */
    public InvokeResponse invoke(String function, Object payload) {
        return invoke(function, "POST", "/", payload == null ? new byte[0]
                : Json.write(payload).getBytes(StandardCharsets.UTF_8));
    }

    /** Call another function of the tenant with a method, path and raw body. */
    @SuppressWarnings("unchecked")
    public InvokeResponse invoke(String function, String method, String path, byte[] body) {
        Map<String, Object> headers = new LinkedHashMap<>();
        headers.put("content-type", "application/json");
        Map<String, Object> value = (Map<String, Object>) call("function.invoke", "function", function,
                "method", method, "path", path, "query", Map.of(), "headers", headers,
                "body_b64", Base64.getEncoder().encodeToString(body));
        return new InvokeResponse(value);
    }

    /** Queue a background task of a function of the tenant; its task id. */
    public String enqueue(String function, Object payload, double delaySeconds) {
        if (delaySeconds < 0) throw new IllegalArgumentException("enqueue delay must be >= 0");
        return String.valueOf(call("task.enqueue", "function", function, "payload", payload, "delay", delaySeconds));
    }

    /** Queue a background task to run now. */
    public String enqueue(String function, Object payload) {
        return enqueue(function, payload, 0);
    }

    /** A host call (context.kv …) was refused or failed on the host side. */
    public static class HostCallError extends RuntimeException {
        /** Machine-readable reason, e.g. "forbidden", "quota_exceeded" (docs/api.md, "Error codes"). */
        public final String code;
        /** Further fields the host sent, e.g. quota, limit and use of a "quota_exceeded". */
        public final Map<String, Object> details;

        public HostCallError(String code, String message, Map<String, Object> details) {
            super(code + ": " + message);
            this.code = code;
            this.details = details;
        }

        static HostCallError of(Map<String, Object> error) {
            Map<String, Object> details = new LinkedHashMap<>(error);
            String code = String.valueOf(details.remove("code"));
            String message = String.valueOf(details.remove("message"));
            return new HostCallError(code, message, Collections.unmodifiableMap(details));
        }
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

        Request(Map<String, Object> r, String id) {
            this.method = String.valueOf(r.getOrDefault("method", "GET"));
            this.path = String.valueOf(r.getOrDefault("path", "/"));
            this.query = strings(r.get("query"), false);
            this.headers = strings(r.get("headers"), true);
            Object body = r.get("body_b64");
            try {
                this.body = body == null ? new byte[0] : Base64.getDecoder().decode(String.valueOf(body));
            } catch (IllegalArgumentException bad) {
                throw new Worker.MalformedRequest("body_b64 is not base64");
            }
            this.clientIp = String.valueOf(r.getOrDefault("client_ip", ""));
            this.id = id;
        }

        private static Map<String, String> strings(Object value, boolean lower) {
            if (value == null) return Map.of();
            if (!(value instanceof Map)) throw new Worker.MalformedRequest("query and headers must be mappings");
            Map<String, String> out = new LinkedHashMap<>();
            for (Map.Entry<?, ?> e : ((Map<?, ?>) value).entrySet()) {
                String key = String.valueOf(e.getKey());
                out.put(lower ? key.toLowerCase(Locale.ROOT) : key, String.valueOf(e.getValue()));
            }
            return Collections.unmodifiableMap(out);
        }

        /** The body as UTF-8 text. */
        public String text() {
            return new String(body, StandardCharsets.UTF_8);
        }

        /** The body parsed as JSON (Map, List, String, Long, Double, Boolean or null). */
        public Object json() {
            return body.length == 0 ? null : Json.parse(text());
        }
    }

    /** Log lines of this invocation, with a level. */
    public static class Logger {
        private final Context context;

        Logger(Context context) {
            this.context = context;
        }

        private void log(String level, String message, Object... args) {
            String text = args.length == 0 ? message : String.format(message, args);
            context.host.log(context.id, "logger", level, text);
        }

        public void debug(String message, Object... args) { log("DEBUG", message, args); }
        public void info(String message, Object... args) { log("INFO", message, args); }
        public void warning(String message, Object... args) { log("WARNING", message, args); }
        public void error(String message, Object... args) { log("ERROR", message, args); }
    }

    /** The tenant's key-value store: JSON values under string keys. */
    public static class KV {
        private final Context context;

        KV(Context context) {
            this.context = context;
        }

        /** The value under key, or null. */
        public Object get(String key) {
            return context.call("kv.get", "key", key);
        }

        /** The value under key, or fallback when there is none. */
        public Object get(String key, Object fallback) {
            Object value = get(key);
            return value == null ? fallback : value;
        }

        public void set(String key, Object value) {
            context.call("kv.set", "key", key, "value", value);
        }

        /** Whether the key existed. */
        public boolean delete(String key) {
            return Boolean.TRUE.equals(context.call("kv.delete", "key", key));
        }

        @SuppressWarnings("unchecked")
        public List<String> list(String prefix, int limit) {
            return (List<String>) context.call("kv.list", "prefix", prefix, "limit", limit);
        }

        public List<String> list(String prefix) {
            return list(prefix, 1000);
        }
    }

    /** The tenant's object storage (keys and limits: docs/api.md, "Object storage"). */
    public static class Storage {
        private final Context context;

        Storage(Context context) {
            this.context = context;
        }

        /** Store bytes under key; the object's metadata (key, size, content_type, sha256, updated_at). */
        @SuppressWarnings("unchecked")
        public Map<String, Object> put(String key, byte[] data, String contentType) {
            return (Map<String, Object>) context.call("storage.put", "key", key,
                    "data_b64", Base64.getEncoder().encodeToString(data), "content_type", contentType);
        }

        /** The object's bytes, or null. */
        @SuppressWarnings("unchecked")
        public byte[] get(String key) {
            Map<String, Object> value = (Map<String, Object>) context.call("storage.get", "key", key);
            return value == null ? null : Base64.getDecoder().decode(String.valueOf(value.get("data_b64")));
        }

        /** The object's metadata, or null. */
        @SuppressWarnings("unchecked")
        public Map<String, Object> stat(String key) {
            return (Map<String, Object>) context.call("storage.stat", "key", key);
        }

        public boolean delete(String key) {
            return Boolean.TRUE.equals(context.call("storage.delete", "key", key));
        }

        @SuppressWarnings("unchecked")
        public List<Map<String, Object>> list(String prefix, int limit) {
            return (List<Map<String, Object>>) context.call("storage.list", "prefix", prefix, "limit", limit);
        }
    }

    /** The tenant's SQL database (SQLite or PostgreSQL). */
    public static class Db {
        private final Context context;

        Db(Context context) {
            this.context = context;
        }

        /** Run a statement; rows changed. */
        public long execute(String sql, Object... params) {
            Object n = context.call("db.execute", "sql", sql, "params", List.of(params));
            return n instanceof Number ? ((Number) n).longValue() : 0;
        }

        /** Run a query; its rows, each a Map of column to value. */
        @SuppressWarnings("unchecked")
        public List<Map<String, Object>> fetchall(String sql, Object... params) {
            Map<String, Object> value = (Map<String, Object>) context.call("db.fetchall", "sql", sql,
                    "params", List.of(params));
            List<Object> columns = (List<Object>) value.get("columns");
            List<Map<String, Object>> rows = new ArrayList<>();
            for (Object row : (List<Object>) value.get("rows")) {
                Map<String, Object> m = new LinkedHashMap<>();
                List<Object> cells = (List<Object>) row;
                for (int k = 0; k < columns.size(); k++) m.put(String.valueOf(columns.get(k)), cells.get(k));
                rows.add(m);
            }
            return rows;
        }

        public void begin() { context.call("db.begin"); }
        public void commit() { context.call("db.commit"); }
        public void rollback() { context.call("db.rollback"); }
    }

    /** The tenant's secrets. */
    public static class Secrets {
        private final Context context;

        Secrets(Context context) {
            this.context = context;
        }

        /** The secret's value, or null. */
        public String get(String name) {
            Object value = context.call("secrets.get", "name", name);
            return value == null ? null : String.valueOf(value);
        }

        @SuppressWarnings("unchecked")
        public List<String> list() {
            return (List<String>) context.call("secrets.list");
        }
    }

    /** Which function, version and request this is. */
    public static class FunctionInfo {
        public final String tenant;
        public final String name;
        public final long version;
        public final String sha256;
        public final String runtime;
        public final String requestId;

        FunctionInfo(Map<String, Object> f, String requestId) {
            this.tenant = String.valueOf(f.getOrDefault("tenant", "default"));
            this.name = String.valueOf(f.getOrDefault("name", ""));
            Object v = f.get("version");
            this.version = v instanceof Number ? ((Number) v).longValue() : 0;
            this.sha256 = String.valueOf(f.getOrDefault("sha256", ""));
            this.runtime = String.valueOf(f.getOrDefault("runtime", ""));
            this.requestId = requestId;
        }
    }

    /** The background task a run belongs to. */
    public static class Task {
        private final Context context;
        public final String id;
        public final int attempt;

        Task(Context context, String id, int attempt) {
            this.context = context;
            this.id = id;
            this.attempt = attempt;
        }

        /** Record progress: fraction from 0 to 1, and a message. */
        public void progress(double fraction, String message) {
            if (Double.isNaN(fraction)) throw new IllegalArgumentException("progress fraction must be a number from 0 to 1");
            double clamped = Math.min(1.0, Math.max(0.0, fraction));
            context.call("task.progress", "fraction", clamped, "message", message == null ? "" : message);
        }
    }

    /** What a function called with invoke() answered. */
    public static class InvokeResponse {
        public final int status;
        public final Map<String, String> headers;
        public final byte[] body;
        public final String requestId;
        public final long version;

        @SuppressWarnings("unchecked")
        InvokeResponse(Map<String, Object> v) {
            this.status = ((Number) v.get("status")).intValue();
            Map<String, String> h = new LinkedHashMap<>();
            Object raw = v.get("headers");
            if (raw instanceof Map) ((Map<String, Object>) raw).forEach((k, x) -> h.put(k, String.valueOf(x)));
            this.headers = Collections.unmodifiableMap(h);
            this.body = Base64.getDecoder().decode(String.valueOf(v.getOrDefault("body_b64", "")));
            this.requestId = String.valueOf(v.get("request_id"));
            Object n = v.get("version");
            this.version = n instanceof Number ? ((Number) n).longValue() : 0;
        }

        public boolean ok() { return status < 400; }
        public String text() { return new String(body, StandardCharsets.UTF_8); }
        /** The body parsed as JSON. */
        public Object json() { return body.length == 0 ? null : Json.parse(text()); }
    }

    /** An HTTP response with a status and headers; the body a String, byte[] or JSON value. */
    public static class Response {
        public final int status;
        public final Map<String, String> headers;
        public final Object body;

        public Response(int status, Map<String, String> headers, Object body) {
            this.status = status;
            this.headers = headers == null ? Map.of() : headers;
            this.body = body;
        }

        public Response(int status, Object body) {
            this(status, null, body);
        }

        static Map<String, Object> toWire(Object value) {
            int status = 200;
            Map<String, String> headers = new LinkedHashMap<>();
            Object body = value;
            if (value == null) status = 204;
            if (value instanceof Response) {
                Response r = (Response) value;
                status = r.status;
                headers.putAll(r.headers);
                body = r.body;
            }
            byte[] bytes;
            String implied;
            if (body == null) {
                bytes = new byte[0];
                implied = null;
            } else if (body instanceof byte[]) {
                bytes = (byte[]) body;
                implied = "application/octet-stream";
            } else if (body instanceof String) {
                bytes = ((String) body).getBytes(StandardCharsets.UTF_8);
                implied = "text/plain; charset=utf-8";
            } else {
                bytes = Json.write(body).getBytes(StandardCharsets.UTF_8);
                implied = "application/json";
            }
            if (implied != null && bytes.length > 0
                    && headers.keySet().stream().noneMatch(k -> k.equalsIgnoreCase("content-type"))) {
                headers.put("content-type", implied);
            }
            Map<String, Object> wire = new LinkedHashMap<>();
            wire.put("status", status);
            wire.put("headers", headers);
            wire.put("body_b64", Base64.getEncoder().encodeToString(bytes));
            return wire;
        }
    }
}
