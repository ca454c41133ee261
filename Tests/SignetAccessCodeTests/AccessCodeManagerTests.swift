import Foundation
import Synchronization
@testable import SignetAccessCode
import SignetCore
import SignetPKCS11
import SignetTestSupport
import Testing

/// Codes for test tokens only.
let rightCode = SoftHSMFixture.userCode
let wrongCode = Array("wrong-000".utf8)
let minutes15 = Duration.seconds(15 * 60)

/// A token behind the counting wrapper, a state directory and a manual clock.
struct Setup {
    let wrapper = CountingModule.shared
    let token: Token
    let state: String
    let clock = ManualClock()

    init(_ name: String) throws {
        token = try wrapper.makeToken(name)
        state = try TestPaths.temporaryDirectory("signet-state").path
    }

    func manager(policy: LockoutPolicy = .standard) -> AccessCodeManager {
        AccessCodeManager(stateDirectory: state, policy: policy, clock: clock)
    }

    /// A code target on a new session (sessions are not shared between threads).
    func target() throws -> PKCS11CodeTarget {
        PKCS11CodeTarget(token: token, session: try token.openSession(readWrite: true))
    }

    var logins: Int { wrapper.count("C_Login USER", on: token) }
}

func unlock(_ manager: AccessCodeManager, _ target: PKCS11CodeTarget, _ code: [UInt8], finalTry: Bool = false) -> AccessResult {
    manager.unlock(target, code: SecretBytes(copying: code), allowFinalTry: finalTry)
}

@Suite("Access-code manager: three wrong codes lock for 15 minutes")
struct AccessCodeManagerTests {
    @Test("3 wrong codes lock; the right code is then refused without reaching the token; after 15 min it works")
    func threeWrongLock() throws {
        let setup = try Setup("lock")
        let manager = setup.manager()
        let target = try setup.target()
        #expect(unlock(manager, target, wrongCode) == .wrongCode(triesLeft: 2, lockDuration: minutes15, cardTriesLeft: nil))
        #expect(unlock(manager, target, wrongCode) == .wrongCode(triesLeft: 1, lockDuration: minutes15, cardTriesLeft: nil))
        guard case .locked(let remaining, _, let failures) = unlock(manager, target, wrongCode) else {
            Issue.record("third wrong code did not lock"); return
        }
        #expect(remaining == minutes15 && failures == 3)
        #expect(setup.logins == 3)

        setup.clock.advance(.seconds(28))
        let refused = unlock(manager, target, rightCode)
        guard case .locked(let left, _, _) = refused else { Issue.record("not locked: \(refused)"); return }
        #expect(left == .seconds(14 * 60 + 32))
        #expect(refused.message(localTime: { _ in "12:34" }) == "Token locked for 14 min 32 s (until 12:34) after 3 wrong access codes. Try again then, or unblock it with `signet pin unblock`.")
        #expect(setup.logins == 3, "a locked token must not receive the code")

        setup.clock.advance(minutes15 - .seconds(28) - .seconds(1))
        guard case .locked = unlock(manager, target, rightCode) else { Issue.record("lock ended a second early"); return }
        #expect(setup.logins == 3)
        setup.clock.advance(.seconds(1))
        #expect(unlock(manager, target, rightCode) == .unlocked)
        #expect(setup.logins == 4)
    }

    @Test("A right code resets the count; after a lock runs out there are 3 tries again")
    func resetAndFreshTries() throws {
        let setup = try Setup("reset")
        let manager = setup.manager()
        let target = try setup.target()
        _ = unlock(manager, target, wrongCode)
        _ = unlock(manager, target, wrongCode)
        #expect(unlock(manager, target, rightCode) == .unlocked)
        try target.session.logout()
        #expect(unlock(manager, target, wrongCode) == .wrongCode(triesLeft: 2, lockDuration: minutes15, cardTriesLeft: nil))
        _ = unlock(manager, target, wrongCode)
        _ = unlock(manager, target, wrongCode)
        setup.clock.advance(minutes15)
        #expect(unlock(manager, target, wrongCode) == .wrongCode(triesLeft: 2, lockDuration: minutes15, cardTriesLeft: nil))
    }

    @Test("A lock survives a new manager instance reading the same state directory")
    func restart() throws {
        let setup = try Setup("restart")
        let target = try setup.target()
        for _ in 0..<3 { _ = unlock(setup.manager(), target, wrongCode) }
        let fresh = setup.manager()
        guard case .locked = unlock(fresh, target, rightCode) else { Issue.record("lock lost on restart"); return }
        #expect(setup.logins == 3)
        #expect(fresh.status(target).lockedRemaining == minutes15)
    }

    @Test("16 concurrent callers with wrong codes: exactly 3 codes reach the token")
    func race() throws {
        let setup = try Setup("race")
        let manager = setup.manager()
        let targets = try (0..<16).map { _ in try setup.target() }
        let results = Mutex<[AccessResult]>([])
        DispatchQueue.concurrentPerform(iterations: 16) { index in
            let result = unlock(manager, targets[index], wrongCode)
            results.withLock { $0.append(result) }
        }
        #expect(setup.logins == 3)
        let all = results.withLock { $0 }
        #expect(all.filter { if case .wrongCode = $0 { true } else { false } }.count == 2)
        #expect(all.filter { if case .locked = $0 { true } else { false } }.count == 14)
    }

    @Test("Setting the clock forward within a boot does not shorten a lock; back does not lengthen it")
    func clockJumpsWithinBoot() throws {
        let setup = try Setup("clock")
        let manager = setup.manager()
        let target = try setup.target()
        for _ in 0..<3 { _ = unlock(manager, target, wrongCode) }
        setup.clock.setWall(by: .seconds(3600))
        #expect(manager.status(target).lockedRemaining == minutes15)
        guard case .locked = unlock(manager, target, rightCode) else { Issue.record("clock forward opened the lock"); return }
        setup.clock.setWall(by: .seconds(-7200))
        setup.clock.advance(.seconds(60))
        #expect(manager.status(target).lockedRemaining == minutes15 - .seconds(60))
        #expect(setup.logins == 3)
    }

    @Test("After a reboot, time that runs backwards counts as none: never longer than 15 minutes")
    func clockAcrossReboot() throws {
        let setup = try Setup("reboot")
        let manager = setup.manager()
        let target = try setup.target()
        for _ in 0..<3 { _ = unlock(manager, target, wrongCode) }
        setup.clock.advance(.seconds(120))
        setup.clock.reboot()
        setup.clock.setWall(by: .seconds(-86400))
        #expect(setup.manager().status(target).lockedRemaining == minutes15)
        setup.clock.reboot(downtime: .seconds(86400 + 15 * 60))
        #expect(setup.manager().status(target).lockedRemaining == nil)
        #expect(unlock(setup.manager(), target, rightCode) == .unlocked)
    }

    @Test("A corrupt ledger fails closed: nothing reaches the token, and the message names the repair")
    func corruptLedger() throws {
        let setup = try Setup("corrupt")
        let manager = setup.manager()
        let target = try setup.target()
        _ = unlock(manager, target, wrongCode)
        let directory = setup.state + "/ledger"
        let ledger = try #require(try FileManager.default.contentsOfDirectory(atPath: directory).first { $0.hasSuffix(".ledger") })
        var bytes = try Data(contentsOf: URL(fileURLWithPath: directory + "/" + ledger))
        bytes[bytes.count / 2] ^= 0x01
        try bytes.write(to: URL(fileURLWithPath: directory + "/" + ledger))
        let result = unlock(manager, target, rightCode)
        guard case .ledgerDamaged = result else { Issue.record("corrupt ledger did not fail closed: \(result)"); return }
        #expect(result.message().contains("signet pin repair-ledger"))
        #expect(setup.logins == 1)

        try manager.repairLedger(tokens: [target.identity])
        guard case .locked(let remaining, _, _) = unlock(manager, target, rightCode) else { Issue.record("repair gave free tries"); return }
        #expect(remaining == minutes15)
        setup.clock.advance(minutes15)
        #expect(unlock(manager, target, rightCode) == .unlocked)
    }

    @Test("A missing ledger, or a missing index, fails closed once the token has one")
    func missingLedger() throws {
        let setup = try Setup("missing")
        let manager = setup.manager()
        let target = try setup.target()
        _ = unlock(manager, target, wrongCode)
        let directory = setup.state + "/ledger"
        for name in try FileManager.default.contentsOfDirectory(atPath: directory) where name.hasSuffix(".ledger") {
            try FileManager.default.removeItem(atPath: directory + "/" + name)
        }
        guard case .ledgerDamaged = unlock(manager, target, rightCode) else { Issue.record("missing ledger accepted"); return }

        let other = try Setup("missing-index")
        let otherManager = other.manager()
        let otherTarget = try other.target()
        _ = unlock(otherManager, otherTarget, wrongCode)
        try FileManager.default.removeItem(atPath: other.state + "/ledger/index")
        guard case .ledgerDamaged = unlock(otherManager, otherTarget, rightCode) else { Issue.record("missing index accepted"); return }
        #expect(other.logins == 1)
    }

    @Test("The token's final try is never spent unless asked; a blocked token is reported")
    func cardFinalTry() throws {
        let setup = try Setup("final")
        let manager = setup.manager()
        let target = try setup.target()
        try setup.wrapper.addFlags(.userPinFinalTry, to: setup.token)
        defer { try? setup.wrapper.addFlags(nil, to: setup.token) }
        #expect(unlock(manager, target, rightCode) == .cardFinalTry)
        #expect(setup.logins == 0)
        #expect(manager.status(target).card == .finalTry)
        #expect(unlock(manager, target, rightCode, finalTry: true) == .unlocked)
        #expect(setup.logins == 1)
        try target.session.logout()
        try setup.wrapper.addFlags(.userPinLocked, to: setup.token)
        #expect(unlock(manager, target, rightCode) == .cardBlocked)
        #expect(setup.logins == 1)
    }

    @Test("A code outside the token's length limits is refused before it is counted or sent")
    func lengthLimits() throws {
        let setup = try Setup("length")
        let manager = setup.manager()
        let target = try setup.target()
        #expect(unlock(manager, target, Array("123".utf8)) == .invalidLength(min: 4, max: 255))
        #expect(unlock(manager, target, []) == .invalidLength(min: 4, max: 255))
        #expect(setup.logins == 0)
        #expect(manager.status(target).failures == 0)
    }

    @Test("A code the token never checked (already logged in) is withdrawn, not counted")
    func withdrawn() throws {
        let setup = try Setup("withdraw")
        let manager = setup.manager()
        let first = try setup.target()
        #expect(unlock(manager, first, rightCode) == .unlocked)
        let second = try setup.target()  // login state is per token: this session is already logged in
        #expect(unlock(manager, second, wrongCode) == .alreadyUnlocked)
        #expect(manager.status(second).failures == 0)
    }

    @Test("PKCS#11 errors that prove the code never reached the token are not counted; others are")
    func classification() {
        #expect(PKCS11CodeTarget.classify(.call(operation: "C_Login", code: .tokenNotPresent)) == .notPresented("C_Login failed: \(CKReturn.tokenNotPresent)"))
        #expect(PKCS11CodeTarget.classify(.call(operation: "C_Login", code: .pinIncorrect)) == .rejected)
        #expect(PKCS11CodeTarget.classify(.call(operation: "C_Login", code: .pinLocked)) == .blocked)
        #expect(PKCS11CodeTarget.classify(.call(operation: "C_Login", code: .deviceRemoved)) == .ambiguous("C_Login failed: \(CKReturn.deviceRemoved)"))
        #expect(PKCS11CodeTarget.classify(.call(operation: "C_Login", code: .deviceError)) == .ambiguous("C_Login failed: \(CKReturn.deviceError)"))
    }

    @Test("Changing the code counts a wrong old code; the new code then works")
    func change() throws {
        let setup = try Setup("change")
        let manager = setup.manager()
        let target = try setup.target()
        let newCode = Array("new-code-42".utf8)
        let wrong = manager.changeCode(target, old: SecretBytes(copying: wrongCode), new: SecretBytes(copying: newCode))
        #expect(wrong == .wrongCode(triesLeft: 2, lockDuration: minutes15, cardTriesLeft: nil))
        #expect(manager.changeCode(target, old: SecretBytes(copying: rightCode), new: SecretBytes(copying: Array("ab".utf8))) == .invalidLength(min: 4, max: 255))
        #expect(manager.changeCode(target, old: SecretBytes(copying: rightCode), new: SecretBytes(copying: newCode)) == .unlocked)
        #expect(setup.wrapper.count("C_SetPIN", on: setup.token) == 2)
        #expect(unlock(manager, target, newCode) == .unlocked)
    }

    @Test("Unblocking with the SO code clears Signet's lock; SO attempts are counted on their own")
    func unblock() throws {
        let setup = try Setup("unblock")
        let manager = setup.manager()
        let target = try setup.target()
        for _ in 0..<3 { _ = unlock(manager, target, wrongCode) }
        let newCode = Array("fresh-code".utf8)
        let wrongSO = manager.unblock(target, soCode: SecretBytes(copying: wrongCode), newCode: SecretBytes(copying: newCode))
        #expect(wrongSO == .wrongCode(triesLeft: 2, lockDuration: minutes15, cardTriesLeft: nil))
        #expect(manager.status(target, role: .so).failures == 1)
        #expect(manager.status(target).lockedRemaining != nil)
        #expect(manager.unblock(target, soCode: SecretBytes(copying: SoftHSMFixture.soCode), newCode: SecretBytes(copying: newCode)) == .unlocked)
        #expect(manager.status(target).lockedRemaining == nil)
        #expect(manager.status(target, role: .so).failures == 0)
        #expect(unlock(manager, target, newCode) == .unlocked)
        #expect(setup.wrapper.count("C_Login SO", on: setup.token) == 2)
    }

    @Test("The ledger holds no access code")
    func noCodeInLedger() throws {
        let setup = try Setup("nocode")
        let manager = setup.manager()
        let target = try setup.target()
        let distinctive = Array("Zq9-distinct".utf8)
        _ = unlock(manager, target, distinctive)
        _ = unlock(manager, target, rightCode)
        for name in try FileManager.default.contentsOfDirectory(atPath: setup.state + "/ledger") {
            let bytes = try Data(contentsOf: URL(fileURLWithPath: setup.state + "/ledger/" + name))
            #expect(bytes.range(of: Data(distinctive)) == nil)
            #expect(bytes.range(of: Data(rightCode)) == nil)
        }
    }

    @Test("An administrator's policy sets the rule; a user's can only make it stricter")
    func policy() {
        let admin = LockoutPolicy.standard.applying(SignetConfig(parsing: "max-failures = 5\nlock-minutes = 30"), onlyStricter: false)
        #expect(admin == LockoutPolicy(maximumFailures: 5, lockDuration: .seconds(1800)))
        let weaker = admin.applying(SignetConfig(parsing: "max-failures = 10\nlock-minutes = 1"), onlyStricter: true)
        #expect(weaker == admin)
        let stricter = admin.applying(SignetConfig(parsing: "max-failures = 2\nlock-minutes = 60"), onlyStricter: true)
        #expect(stricter == LockoutPolicy(maximumFailures: 2, lockDuration: .seconds(3600)))
    }

    @Test("A process killed at each step of an attempt never gains a free try", arguments: AttemptStep.allCases)
    func crashSafety(_ step: AttemptStep) throws {
        let setup = try Setup("crash-\(step.rawValue)")
        let helper = TestPaths.binaries.appendingPathComponent("signet-test-helper").path
        // The right code: an interrupted attempt counts even when it would have succeeded.
        let result = try Run.command(helper, ["unlock", "--state", setup.state, "--module", setup.wrapper.path,
                                              "--serial", setup.token.info.serialNumber, "--crash-at", step.rawValue],
                                     stdin: Data(rightCode + [0x0A]), environment: setup.wrapper.environment)
        #expect(result.status == 128 + SIGKILL, "helper: \(result.errors)\(result.output)")
        let status = setup.manager().status(try setup.target())
        switch step {
        case .checked:
            #expect(status.failures == 0)  // nothing was recorded, and nothing was sent
            #expect(setup.logins == 0)
        case .recorded:
            #expect(status.failures == 1)  // recorded before the code left
            #expect(setup.logins == 0)
        case .presented:
            #expect(status.failures == 1)  // the token accepted it, but the outcome was never written
            #expect(setup.logins == 1)
        }
        // The pending attempt stays counted on the next run.
        #expect(unlock(setup.manager(), try setup.target(), wrongCode) == .wrongCode(triesLeft: step == .checked ? 2 : 1, lockDuration: minutes15, cardTriesLeft: nil))
    }
}

/// Issue 24 #2: the lockout policy files follow the configuration's rule (`ProtectedFile`).
@Suite("Lockout policy files others could write")
struct ProtectedPolicyTests {
    @Test("A writable administrator's policy cannot loosen the lockout: it is refused, with the reason, and the standard applies")
    func writableAdministratorPolicy() throws {
        let directory = try TestPaths.temporaryDirectory("signet-policy")
        let paths = SignetPaths(environment: ["HOME": directory.path])
        let system = directory.appendingPathComponent("etc").path
        try FileManager.default.createDirectory(atPath: system, withIntermediateDirectories: true)
        try "max-failures = 10\n".write(toFile: system + "/policy", atomically: true, encoding: .utf8)
        chmod(system + "/policy", 0o644)
        #expect(LockoutPolicy.load(paths: paths, systemDirectory: system).maximumFailures == 10)
        chmod(system + "/policy", 0o666)
        var problems: [String] = [], refusals: [String] = []
        let policy = LockoutPolicy.load(paths: paths, systemDirectory: system, problems: &problems, refusals: &refusals)
        #expect(policy.maximumFailures == LockoutPolicy.standard.maximumFailures)
        #expect(refusals.first?.contains("\(system)/policy: is writable by group or others (mode 666)") == true, "\(refusals)")
    }
}
