// signet-test-helper: runs one access-code attempt in its own process and
// kills itself with SIGKILL at a chosen step, so tests can check what the
// ledger holds after a crash at each point.
//
// Usage: signet-test-helper unlock --state DIR --module PATH --serial S [--crash-at checked|recorded|presented]
//        signet-test-helper read-key --module PATH --serial S --id HEX
//          logs in and asks the token for the private key's flags and secret
//          values, printing `name=value` (hex) or `name=refused` per attribute.
//        signet-test-helper list-modules
//          loads the modules registered with p11-kit as the agent does and prints
//          `loaded PATH` or `skipped PATH: REASON` per module.
// The code is read from standard input (one line). Environment: SOFTHSM2_CONF
// and the wrapper module's variables, as the test sets them.
#if canImport(Glibc)
import Glibc
#endif
import SignetAccessCode
import SignetCore
import SignetPKCS11

let arguments = Array(CommandLine.arguments.dropFirst())
guard ["unlock", "read-key", "list-modules"].contains(arguments.first ?? "") else {
    Console.error("usage: signet-test-helper unlock --state DIR --module PATH --serial S [--crash-at STEP] | read-key --module PATH --serial S --id HEX | list-modules")
    exit(2)
}
func option(_ name: String) -> String? {
    guard let index = arguments.firstIndex(of: name), index + 1 < arguments.count else { return nil }
    return arguments[index + 1]
}

if arguments.first == "list-modules" {
    do {
        let context = try PKCS11Context(configuration: PKCS11Configuration(loadRegisteredModules: true))
        for module in context.modules { Console.out("loaded \(module.path)\n") }
        for skip in context.skipped { Console.out("skipped \(skip.path): \(skip.reason)\n") }
    } catch {
        Console.error("\(error)")
        exit(1)
    }
    exit(0)
}
if arguments.first == "read-key" {
    guard let module = option("--module"), let serial = option("--serial"), let id = option("--id").flatMap(Hex.decode) else {
        Console.error("missing --module, --serial or --id")
        exit(2)
    }
    var code = SecretBytes()
    var byte: UInt8 = 0
    while read(0, &byte, 1) == 1 && byte != 0x0A { code.append(byte) }
    do {
        let context = try PKCS11Context(configuration: PKCS11Configuration(loadRegisteredModules: false, modulePaths: [module]))
        guard let token = context.tokens().first(where: { $0.info.serialNumber == serial }) else { exit(3) }
        let session = try token.openSession()
        try session.login(.user, code: code)
        guard let key = try session.findObjects([Attribute(.objectClass, .privateKey), Attribute(.id, bytes: id)], limit: 1).first else { exit(4) }
        let names: [(String, AttributeType)] = [
            ("sensitive", .sensitive), ("extractable", .extractable), ("private-exponent", .privateExponent), ("prime1", .prime1), ("value", .value),
        ]
        for (name, type) in names {
            // One attribute per call, so that one refusal does not hide another's answer.
            let values = try session.attributes(key, [type])
            Console.out("\(name)=\(values[type].map { Hex.encode($0) } ?? "refused")\n")
        }
    } catch {
        Console.error("\(error)")
        exit(1)
    }
    exit(0)
}
guard let state = option("--state"), let module = option("--module"), let serial = option("--serial") else {
    Console.error("missing --state, --module or --serial")
    exit(2)
}
let crashAt = option("--crash-at").flatMap(AttemptStep.init(rawValue:))

var code = SecretBytes()
var byte: UInt8 = 0
while read(0, &byte, 1) == 1 && byte != 0x0A { code.append(byte) }

do {
    let context = try PKCS11Context(configuration: PKCS11Configuration(loadRegisteredModules: false, modulePaths: [module]))
    guard let token = context.tokens().first(where: { $0.info.serialNumber == serial }) else {
        Console.error("no token with serial \(serial)")
        exit(3)
    }
    let target = PKCS11CodeTarget(token: token, session: try token.openSession())
    let manager = AccessCodeManager(stateDirectory: state, policy: .standard, stepHook: { step in
        if step == crashAt { kill(getpid(), SIGKILL) }
    })
    let result = manager.unlock(target, code: code)
    Console.out("\(result)\n")
} catch {
    Console.error("\(error)")
    exit(1)
}
