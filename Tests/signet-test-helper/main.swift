// signet-test-helper: runs one access-code attempt in its own process and
// kills itself with SIGKILL at a chosen step, so tests can check what the
// ledger holds after a crash at each point.
//
// Usage: signet-test-helper unlock --state DIR --module PATH --serial S [--crash-at checked|recorded|presented]
// The code is read from standard input (one line). Environment: SOFTHSM2_CONF
// and the wrapper module's variables, as the test sets them.
#if canImport(Glibc)
import Glibc
#endif
import SignetAccessCode
import SignetCore
import SignetPKCS11

let arguments = Array(CommandLine.arguments.dropFirst())
guard arguments.first == "unlock" else {
    Console.error("usage: signet-test-helper unlock --state DIR --module PATH --serial S [--crash-at STEP]")
    exit(2)
}
func option(_ name: String) -> String? {
    guard let index = arguments.firstIndex(of: name), index + 1 < arguments.count else { return nil }
    return arguments[index + 1]
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
