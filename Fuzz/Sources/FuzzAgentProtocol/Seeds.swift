// The agent protocol's seed corpus: one body of every request and every response, the same
// values as Tests/SignetAgentProtocolTests/ProtocolTests.swift's `everyRequest` and
// `everyResponse` (copied: test targets cannot be imported). `FuzzAgentProtocol --write-seeds DIR`
// writes them; Fuzz/corpus/agent-protocol/ holds its output.
#if canImport(Glibc)
import Glibc
#endif
import SignetAgentProtocol
import SignetCore

private func secret(_ text: String) -> SharedSecret { SharedSecret(SecretBytes(copying: Array(text.utf8))) }

/// One of every request, with fields that are not all empty.
private let everyRequest: [AgentRequest] = [
    .hello(minVersion: 1, maxVersion: 1, client: "signet 0.1.0"),
    .status,
    .listTokens,
    .listObjects(token: nil),
    .listObjects(token: "pkcs11:token=Alice"),
    .getCertificate(object: "pkcs11:token=Alice;id=%01;type=cert"),
    .unlock(token: "pkcs11:serial=1234", code: secret("Pa55-word"), finalTry: true),
    .lock(token: nil),
    .sign(key: "pkcs11:id=%01;type=private", mechanism: WireMechanism(type: 0x0D, hash: 0x250, mgf: 2, saltLength: 32), data: Array(repeating: 7, count: 32)),
    .decrypt(key: "pkcs11:id=%01;type=private", mechanism: WireMechanism(type: 9, hash: 0x220, mgf: 1, label: [1, 2]), ciphertext: Array(0..<255)),
    .derive(key: "pkcs11:id=%02", kdf: 1, sharedData: [], peerPoint: [4] + Array(repeating: 9, count: 64)),
    .generateKeyPair(token: nil, keyType: .ec, bits: 256, curve: "p256", id: [1], label: "Mail key"),
    .storeCertificate(token: "pkcs11:token=A", der: [0x30, 0x03, 0x02, 0x01, 0x01], id: [1], label: "Mail"),
    .deleteObject(object: "pkcs11:id=%01;type=cert"),
    .importKey(token: nil, key: ImportedKey(keyType: .rsa, components: [(.modulus, secret("nn")), (.privateExponent, secret("dd"))]), id: [9], label: "Imported"),
    .changeCode(token: nil, old: secret("old-code"), new: secret("new-code"), finalTry: false),
    .unblock(token: nil, soCode: secret("so-code!"), newCode: secret("new-code"), finalTry: false),
    .initSoftwareToken(label: "Test", userCode: secret("123456"), soCode: secret("12345678")),
    .shutdown,
]

private let everyResponse: [AgentResponse] = [
    .hello(version: 1, agentVersion: "0.2.0", pid: 4242),
    .status(AgentStatus(agentVersion: "0.2.0", pid: 1, uptimeSeconds: 99, connections: 3, tokens: [sampleToken])),
    .tokens([sampleToken, sampleToken]),
    .objects([ObjectEntry(uri: "pkcs11:id=%01;type=private", kind: .privateKey, label: "k", id: [1], keyType: .rsa, bits: 2048, usages: [.sign, .decrypt]),
              ObjectEntry(uri: "pkcs11:id=%01;type=cert", kind: .certificate, label: "c", id: [1], keyType: nil, bits: 0, usages: [], subject: [0x30, 0])]),
    .certificate(der: [0x30, 0x00]),
    .access(AccessOutcome(kind: .locked, triesLeft: 0, lockedSeconds: 900, message: "Token locked for 15 min")),
    .access(AccessOutcome(kind: .unlocked, message: "Unlocked.")),
    .ok(message: "Locked."),
    .signature(Array(repeating: 1, count: 256)),
    .plaintext([1, 2, 3]),
    .derived([4, 5]),
    .keyPair(publicKey: "pkcs11:id=%01;type=public", privateKey: "pkcs11:id=%01;type=private", subjectPublicKeyInfo: [0x30]),
    .stored(object: "pkcs11:id=%01;type=cert"),
    .notice(.presentToken, message: "Present your token"),
    .error(.notUnlocked, message: "Unlock the token first: signet unlock"),
]

private let sampleToken = TokenEntry(uri: "pkcs11:token=Alice", label: "Alice", manufacturer: "SoftHSM project", model: "SoftHSM v2",
                                     serial: "abc", software: true, unlocked: false, failures: 1, triesLeft: 2, lockedSeconds: nil,
                                     tokenCounter: "ok", ledgerDamage: nil)

/// Writes each body (the frame without its length prefix) to `directory`/request-NN and response-NN.
func writeSeeds(to directory: String) {
    func write(_ frame: WireBuffer, _ name: String) {
        let body = Array(frame.bytes.dropFirst(4))
        let file = open(directory + "/" + name, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        precondition(file >= 0 && body.withUnsafeBytes { Glibc.write(file, $0.baseAddress, $0.count) } == body.count, "cannot write \(directory)/\(name)")
        close(file)
    }
    for (index, request) in everyRequest.enumerated() { write(AgentFrame.encode(request, id: UInt32(index) + 1), "request-\(request.name)-\(index)") }
    for (index, response) in everyResponse.enumerated() { write(AgentFrame.encode(response, id: UInt32(index) + 1), "response-\(index)") }
}
