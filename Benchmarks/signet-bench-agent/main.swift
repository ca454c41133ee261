// signet-bench-agent: signing through signet-agent against signing in-process
// and against p11-kit's own remoting (p11-kit server + p11-kit-client.so),
// all on the same SoftHSM2 token in the same run.
//
// Not a test: machines are shared and noisy, so every figure is printed as a
// ratio against the direct in-process baseline measured in the same rounds
// (rounds alternate the methods; medians of per-round figures are reported).
// Usage: signet-bench-agent [--rounds N] [--seconds-per-round S]
#if canImport(Glibc)
import Glibc
#endif
import SignetAgentClient
import SignetAgentProtocol
import SignetCore
import SignetPKCS11
import Synchronization

var rounds = 5
var secondsPerRound = 1.0
var only: String?
var arguments = CommandLine.arguments.dropFirst()
while let argument = arguments.popFirst() {
    switch argument {
    case "--rounds": rounds = arguments.popFirst().flatMap { Int($0) } ?? rounds
    case "--seconds-per-round": secondsPerRound = arguments.popFirst().flatMap { Double($0) } ?? secondsPerRound
    case "--only": only = arguments.popFirst()
    default:
        Console.error("usage: signet-bench-agent [--rounds N] [--seconds-per-round S] [--only \"CASE METHOD\"] (for profiling one method)")
        exit(2)
    }
}

func fail(_ message: String) -> Never {
    Console.error("signet-bench-agent: \(message)")
    exit(1)
}

func spawn(_ path: String, _ arguments: [String], environment: [String: String], output: String) -> pid_t {
    var actions = posix_spawn_file_actions_t()
    posix_spawn_file_actions_init(&actions)
    defer { posix_spawn_file_actions_destroy(&actions) }
    posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
    posix_spawn_file_actions_addopen(&actions, 1, output, O_WRONLY | O_CREAT | O_APPEND, 0o600)
    posix_spawn_file_actions_adddup2(&actions, 1, 2)
    let argv = ([path] + arguments).map { strdup($0) } + [nil]
    defer { argv.forEach { free($0) } }
    let env = environment.map { strdup("\($0.key)=\($0.value)") } + [nil]
    defer { env.forEach { free($0) } }
    var pid: pid_t = 0
    let result = posix_spawn(&pid, path, &actions, nil, argv, env)
    guard result == 0 else { fail("cannot start \(path): \(String(cString: strerror(result)))") }
    return pid
}

func residentKilobytes(_ pid: pid_t) -> Int {
    let status = FileIO.readText("/proc/\(pid)/status", limit: 1 << 16) ?? ""
    let line = status.split(separator: "\n").first { $0.hasPrefix("VmRSS:") } ?? ""
    return Int(line.split(separator: " ").dropFirst().first ?? "0") ?? 0
}

// MARK: A private SoftHSM2 token with an RSA-2048 and a P-256 key.

var template = Array("/tmp/signet-bench-agent-XXXXXX".utf8CString)
guard let dirPointer = mkdtemp(&template) else { fail("mkdtemp failed") }
let directory = String(cString: dirPointer)
FileIO.makeDirectories(directory + "/tokens")
FileIO.writeAtomically(directory + "/softhsm2.conf", text: "directories.tokendir = \(directory)/tokens\nobjectstore.backend = file\nlog.level = ERROR\n")
setenv("SOFTHSM2_CONF", directory + "/softhsm2.conf", 1)
guard let softhsm = SoftwareTokens.installedModulePath() else { fail("SoftHSM2 is not installed") }
let code = "123456"

let context: PKCS11Context
let token: Token
let session: Session
do {
    context = try PKCS11Context(configuration: PKCS11Configuration(loadRegisteredModules: false, modulePaths: [softhsm]))
    token = try SoftwareTokens.create(in: context, label: "bench", userCode: SecretBytes(copying: Array(code.utf8)), soCode: SecretBytes(copying: Array("so-123456".utf8)))
    session = try token.openSession(readWrite: true)
    try session.login(.user, code: SecretBytes(copying: Array(code.utf8)))
    _ = try session.generateKeyPair(.rsa(bits: 2048), id: [1], label: "rsa")
    _ = try session.generateKeyPair(.ec(.p256), id: [2], label: "ec")
} catch {
    fail("\(error)")
}

struct Case {
    var name: String
    var id: UInt8
    var mechanism: Mechanism
    var wire: WireMechanism
    var data: [UInt8]
}
let digest = [UInt8](repeating: 0x5A, count: 32)
let digestInfo: [UInt8] = [0x30, 0x31, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01, 0x05, 0x00, 0x04, 0x20] + digest
let cases = [
    Case(name: "RSA-2048", id: 1, mechanism: .rsaPKCS, wire: WireMechanism(type: 1), data: digestInfo),
    Case(name: "P-256", id: 2, mechanism: .ecdsa, wire: WireMechanism(type: 0x1041), data: digest),
]

// MARK: The agent, on the same token.

let home = directory + "/home"
var agentEnvironment = ProcessEnvironment.all()
for (key, value) in ["HOME": home, "XDG_RUNTIME_DIR": home + "/run", "XDG_STATE_HOME": home + "/state",
                     "XDG_CONFIG_HOME": home + "/config", "XDG_DATA_HOME": home + "/data"] {
    agentEnvironment[key] = value
}
FileIO.makeDirectories(home + "/config/signet")
FileIO.writeAtomically(home + "/config/signet/config", text: "p11-kit-modules = no\npkcs11-module = \(softhsm)\n")
let agentPaths = SignetPaths(environment: agentEnvironment)
let socketPath = AgentLauncher.socketPath(agentPaths)
var own = [CChar](repeating: 0, count: 4096)
let ownLength = readlink("/proc/self/exe", &own, own.count - 1)
let binDirectory = String(decoding: own[0..<max(0, ownLength)].map { UInt8(bitPattern: $0) }, as: UTF8.self).split(separator: "/").dropLast().joined(separator: "/")
let agentPID = spawn("/" + binDirectory + "/signet-agent", [], environment: agentEnvironment, output: directory + "/agent.log")
var probe: AgentClient?
for _ in 0..<500 where probe == nil {
    probe = try? AgentClient(socketPath: socketPath, clientName: "bench")
    if probe == nil { usleep(10_000) }
}
guard let control = probe else { fail("the agent did not start; see \(directory)/agent.log") }
guard case .access(let unlocked)? = try? control.call(.unlock(token: nil, code: SharedSecret(SecretBytes(copying: Array(code.utf8))), finalTry: false)),
      unlocked.succeeded else { fail("could not unlock through the agent") }
usleep(200_000)
let startupRSS = residentKilobytes(agentPID)
let tokenURI = token.uri
func keyURI(_ id: UInt8) -> String { tokenURI.setting("id", [id]).setting("type", Array("private".utf8)).description }

// MARK: p11-kit server on the same token, reached through p11-kit-client.so.

let p11kitSocket = directory + "/p11-kit.sock"
let serverPID = spawn("/usr/bin/p11-kit", ["server", "-f", "-n", p11kitSocket, "--provider", softhsm, "pkcs11:token=bench"],
                      environment: ProcessEnvironment.all(), output: directory + "/p11-kit.log")
for _ in 0..<500 where !FileIO.exists(p11kitSocket) { usleep(10_000) }
setenv("P11_KIT_SERVER_ADDRESS", "unix:path=\(p11kitSocket)", 1)
let clientModule = ["/usr/lib/x86_64-linux-gnu/pkcs11/p11-kit-client.so", "/usr/lib/aarch64-linux-gnu/pkcs11/p11-kit-client.so"].first(where: FileIO.exists)
var remoteSession: Session?
if let clientModule {
    do {
        let remote = try PKCS11Context(configuration: PKCS11Configuration(loadRegisteredModules: false, modulePaths: [clientModule]))
        guard let remoteToken = remote.tokens().first(where: { $0.info.label == "bench" }) else { throw PKCS11Error.tokenNotFound("bench") }
        let opened = try remoteToken.openSession(readWrite: false)
        if (try? opened.isLoggedIn()) != true { try? opened.login(.user, code: SecretBytes(copying: Array(code.utf8))) }
        remoteSession = opened
    } catch {
        Console.error("p11-kit server path unavailable: \(error)")
    }
}

// MARK: Measuring.

struct Sample {
    var operations = 0
    var latencies: [Double] = []
    var seconds = 0.0
    var rate: Double { Double(operations) / seconds }
}

/// Runs `body` on `threads` threads for about `secondsPerRound`; each call is one signature.
func measure(threads: Int, seconds: Double, _ makeWorker: @escaping @Sendable (Int) -> (@Sendable () -> Bool)) -> Sample {
    let results = Mutex<[Sample]>([])
    let start = Atomic<Bool>(false)
    let done = Atomic<Int>(0)
    for index in 0..<threads {
        let work = makeWorker(index)
        DetachedThread.start {
            while !start.load(ordering: .acquiring) { sched_yield() }
            var sample = Sample()
            let begin = MonotonicClock.seconds()
            while true {
                let t0 = MonotonicClock.seconds()
                guard work() else { break }
                let t1 = MonotonicClock.seconds()
                sample.latencies.append(t1 - t0)
                sample.operations += 1
                if t1 - begin >= seconds { break }
            }
            sample.seconds = MonotonicClock.seconds() - begin
            results.withLock { $0.append(sample) }
            done.add(1, ordering: .releasing)
        }
    }
    start.store(true, ordering: .releasing)
    while done.load(ordering: .acquiring) < threads { usleep(1000) }
    let all = results.withLock { $0 }
    var total = Sample()
    total.operations = all.reduce(0) { $0 + $1.operations }
    total.seconds = all.map(\.seconds).max() ?? 1
    total.latencies = all.flatMap(\.latencies).sorted()
    return total
}

func percentile(_ sorted: [Double], _ p: Double) -> Double {
    guard !sorted.isEmpty else { return 0 }
    return sorted[min(sorted.count - 1, Int(Double(sorted.count) * p))]
}
func median(_ values: [Double]) -> Double {
    let sorted = values.sorted()
    return sorted.isEmpty ? 0 : sorted[sorted.count / 2]
}

final class Box: @unchecked Sendable { let client: AgentClient; init(_ client: AgentClient) { self.client = client } }
let agentClients = (0..<8).map { _ -> Box in
    guard let client = try? AgentClient(socketPath: socketPath, clientName: "bench") else { fail("cannot connect") }
    return Box(client)
}
let directSession = session
let remote = remoteSession

print("Signing on one SoftHSM2 token (\(token.module.info.libraryVersion)); \(rounds) rounds of ~\(secondsPerRound) s per method, methods alternating.")
print("Ratios are against direct in-process signing measured in the same rounds; medians over rounds.")
print("")
print("case      method                  ops/s     p50 µs    p99 µs   ratio to direct")
for benchCase in cases {
    let handle: ObjectHandle
    do {
        guard let found = try session.findObjects([Attribute(.objectClass, .privateKey), Attribute(.id, bytes: [benchCase.id])]).first else { fail("no key") }
        handle = found
    } catch { fail("\(error)") }
    var remoteHandle: ObjectHandle?
    if let remote { remoteHandle = try? remote.findObjects([Attribute(.objectClass, .privateKey), Attribute(.id, bytes: [benchCase.id])]).first }
    let request = AgentRequest.sign(key: keyURI(benchCase.id), mechanism: benchCase.wire, data: benchCase.data)

    var methods: [(String, Int, @Sendable (Int) -> (@Sendable () -> Bool))] = [
        ("direct in-process", 1, { _ in { (try? directSession.sign(benchCase.mechanism, key: handle, data: benchCase.data)) != nil } }),
        ("agent, 1 client", 1, { _ in { if case .signature? = try? agentClients[0].client.call(request) { true } else { false } } }),
        ("agent, 8 clients", 8, { index in {
            do {
                if case .signature = try agentClients[index].client.call(request) { return true }
            } catch {
                Console.error("agent, 8 clients: \(error)")
            }
            return false
        } }),
    ]
    if let remote, let remoteHandle {
        methods.append(("p11-kit server", 1, { _ in { (try? remote.sign(benchCase.mechanism, key: remoteHandle, data: benchCase.data)) != nil } }))
    }
    var rates = [[Double]](repeating: [], count: methods.count)
    var ratios = [[Double]](repeating: [], count: methods.count)
    var p50 = [[Double]](repeating: [], count: methods.count)
    var p99 = [[Double]](repeating: [], count: methods.count)
    for round in 0..<rounds {
        var roundRates = [Double](repeating: 0, count: methods.count)
        let order = round % 2 == 0 ? Array(methods.indices) : Array(methods.indices.reversed())
        for index in order {
            if let only, index != 0, !"\(benchCase.name) \(methods[index].0)".contains(only) { roundRates[index] = .nan; continue }
            let sample = measure(threads: methods[index].1, seconds: secondsPerRound, methods[index].2)
            guard sample.operations > 0 else { fail("\(methods[index].0) produced no signature") }
            roundRates[index] = sample.rate
            p50[index].append(percentile(sample.latencies, 0.5))
            p99[index].append(percentile(sample.latencies, 0.99))
        }
        for index in methods.indices {
            rates[index].append(roundRates[index])
            ratios[index].append(roundRates[index] / roundRates[0])
        }
    }
    for index in methods.indices where !rates[index].contains(where: \.isNaN) {
        let name = benchCase.name.padding(9), method = methods[index].0.padding(22)
        print("\(name) \(method) \(Int(median(rates[index])).description.leftPadding(8))  \(Int(median(p50[index]) * 1e6).description.leftPadding(8))  \(Int(median(p99[index]) * 1e6).description.leftPadding(8))   \(format(median(ratios[index])))")
    }
    if methods.count == 4, only == nil {
        let agentOverP11 = zip(rates[1], rates[3]).map { $0 / $1 }
        print("\(benchCase.name.padding(9)) agent (1 client) / p11-kit server: \(format(median(agentOverP11)))")
    }
    if remote == nil { print("\(benchCase.name.padding(9)) p11-kit server: not measured (p11-kit-client.so unavailable)") }
}

// MARK: Memory.

let idle = residentKilobytes(agentPID)
var held: [AgentClient] = []
for _ in 0..<64 { if let client = try? AgentClient(socketPath: socketPath, clientName: "idle") { held.append(client) } }
usleep(200_000)
let with64 = residentKilobytes(agentPID)
print("")
print("agent RSS: idle after start \(startupRSS) kB; after the runs, 9 clients connected \(idle) kB; with \(held.count) more clients connected \(with64) kB")

held.removeAll()
_ = try? control.call(.shutdown)
kill(serverPID, SIGTERM)
var status: Int32 = 0
waitpid(agentPID, &status, 0)
waitpid(serverPID, &status, 0)

func format(_ value: Double) -> String {
    let scaled = Int((value * 1000).rounded())
    return "\(scaled / 1000).\(String(scaled % 1000).leftPadding(3, with: "0"))"
}

extension String {
    func padding(_ width: Int) -> String { count >= width ? self : self + String(repeating: " ", count: width - count) }
    func leftPadding(_ width: Int, with pad: Character = " ") -> String { count >= width ? self : String(repeating: pad, count: width - count) + self }
}
