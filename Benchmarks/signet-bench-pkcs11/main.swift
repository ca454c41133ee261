// signet-bench-pkcs11: PKCS#11 sign rate through Signet's Swift layer against
// a plain C loop over the same SoftHSM2 key, in the same run.
//
// Not a test: the machines are shared and noisy, so it prints ratios against
// the baseline measured alongside (rounds alternate C and Swift), and medians.
// Usage: signet-bench-pkcs11 [--rounds N] [--seconds-per-round S]
#if canImport(Glibc)
import Glibc
#endif
import CBenchPKCS11
import CP11Kit
import SignetCore
import SignetPKCS11

var rounds = 7
var secondsPerRound = 1.0
var arguments = CommandLine.arguments.dropFirst()
while let argument = arguments.popFirst() {
    switch argument {
    case "--rounds": rounds = arguments.popFirst().flatMap { Int($0) } ?? rounds
    case "--seconds-per-round": secondsPerRound = arguments.popFirst().flatMap { Double($0) } ?? secondsPerRound
    default:
        Console.error("usage: signet-bench-pkcs11 [--rounds N] [--seconds-per-round S]")
        exit(2)
    }
}

func now() -> Double {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return Double(ts.tv_sec) + Double(ts.tv_nsec) / 1e9
}

func fail(_ message: String) -> Never {
    Console.error("signet-bench-pkcs11: \(message)")
    exit(1)
}

// A private SoftHSM2 instance in a temporary directory.
var template = Array("/tmp/signet-bench-XXXXXX".utf8CString)
guard let dirPointer = mkdtemp(&template) else { fail("mkdtemp failed") }
let directory = String(cString: dirPointer)
FileIO.makeDirectories(directory + "/tokens")
FileIO.writeAtomically(directory + "/softhsm2.conf", text: "directories.tokendir = \(directory)/tokens\nobjectstore.backend = file\nlog.level = ERROR\n")
setenv("SOFTHSM2_CONF", directory + "/softhsm2.conf", 1)
guard let modulePath = SoftwareTokens.installedModulePath() else { fail("SoftHSM2 is not installed") }

let context: PKCS11Context
let token: Token
let session: Session
do {
    context = try PKCS11Context(configuration: PKCS11Configuration(loadRegisteredModules: false, modulePaths: [modulePath]))
    token = try SoftwareTokens.create(in: context, label: "bench", userCode: SecretBytes(copying: Array("123456".utf8)), soCode: SecretBytes(copying: Array("so-123456".utf8)))
    session = try token.openSession(readWrite: true)
    try session.login(.user, code: SecretBytes(copying: Array("123456".utf8)))
} catch {
    fail("\(error)")
}

struct Case {
    var name: String
    var spec: KeySpec
    var mechanism: Mechanism
    var data: [UInt8]
}

let digest = [UInt8](repeating: 0x5A, count: 32)
let digestInfo: [UInt8] = [0x30, 0x31, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01, 0x05, 0x00, 0x04, 0x20] + digest
let cases = [
    Case(name: "RSA-2048 CKM_RSA_PKCS", spec: .rsa(bits: 2048), mechanism: .rsaPKCS, data: digestInfo),
    Case(name: "P-256 CKM_ECDSA", spec: .ec(.p256), mechanism: .ecdsa, data: digest),
]

func median(_ values: [Double]) -> Double {
    let sorted = values.sorted()
    return sorted.count % 2 == 1 ? sorted[sorted.count / 2] : (sorted[sorted.count / 2 - 1] + sorted[sorted.count / 2]) / 2
}

print("PKCS#11 sign rate, SoftHSM2 \(token.module.info.libraryVersion), \(rounds) alternating rounds of ~\(secondsPerRound) s each")
print("case                      C ops/s   Swift ops/s   Swift/C (median of per-round ratios)")
for (index, benchCase) in cases.enumerated() {
    let key: ObjectHandle
    let publicKey: PublicKey
    do {
        let pair = try session.generateKeyPair(benchCase.spec, id: [UInt8(index + 1)], label: benchCase.name)
        key = pair.privateKey
        publicKey = try session.publicKey(pair.publicKey)
    } catch {
        fail("\(error)")
    }
    // Calibrate: how many signatures fill one round.
    var start = now()
    var calibration = 0
    while now() - start < 0.3 {
        _ = try? session.sign(benchCase.mechanism, key: key, data: benchCase.data, expectedLength: publicKey.signatureLength)
        calibration += 1
    }
    let perRound = max(10, Int(Double(calibration) / 0.3 * secondsPerRound))

    var cRates: [Double] = [], swiftRates: [Double] = [], ratios: [Double] = []
    for _ in 0..<rounds {
        start = now()
        let rv = benchCase.data.withUnsafeBufferPointer { data in
            CBenchPKCS11_signLoop(token.module.unsafeFunctionList, session.handle, CK_OBJECT_HANDLE(key.rawValue),
                                  CK_MECHANISM_TYPE(benchCase.mechanism.type.rawValue), data.baseAddress, CK_ULONG(data.count), CK_ULONG(perRound))
        }
        guard rv == CKR_OK else { fail("C loop failed: \(CKReturn(rawValue: UInt(rv)))") }
        let cRate = Double(perRound) / (now() - start)

        start = now()
        do {
            for _ in 0..<perRound {
                _ = try session.sign(benchCase.mechanism, key: key, data: benchCase.data, expectedLength: publicKey.signatureLength)
            }
        } catch {
            fail("Swift loop failed: \(error)")
        }
        let swiftRate = Double(perRound) / (now() - start)
        cRates.append(cRate)
        swiftRates.append(swiftRate)
        ratios.append(swiftRate / cRate)
    }
    func pad(_ text: String, _ width: Int) -> String { text + String(repeating: " ", count: max(0, width - text.count)) }
    func format(_ value: Double, _ digits: Int) -> String {
        let scale = pow(10.0, Double(digits))
        return String((value * scale).rounded() / scale)
    }
    print(pad(benchCase.name, 24), pad(format(median(cRates), 0), 9), pad(format(median(swiftRates), 0), 13),
          format(median(ratios), 3), " (min \(format(ratios.min()!, 3)), max \(format(ratios.max()!, 3)))")
}
