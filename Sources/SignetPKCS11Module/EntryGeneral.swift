#if canImport(Glibc)
import Glibc
#endif
import CSignetPKCS11Front
import CSignetPKCS11Module
import SignetPKCS11Front
import SignetAgentProtocol
import SignetCore

// The general functions: C_Initialize, C_Finalize, C_GetInfo (PKCS#11 2.40, 5.4).

func signet_C_Initialize(_ arguments: UnsafeMutableRawPointer?) -> CK_RV {
    if let arguments {
        let args = arguments.load(as: CK_C_INITIALIZE_ARGS.self)
        guard args.pReserved == nil else { return CKR_ARGUMENTS_BAD }
        // Either all the mutex callbacks or none. With or without CKF_OS_LOCKING_OK the module uses its
        // own pthread locks: it creates no threads and holds no lock across I/O, so the caller's are not needed.
        let given = [args.CreateMutex != nil, args.DestroyMutex != nil, args.LockMutex != nil, args.UnlockMutex != nil]
        guard given.allSatisfy({ $0 }) || given.allSatisfy({ !$0 }) else { return CKR_ARGUMENTS_BAD }
    }
    // The real agent link: the socket, with the agent looked for beside this module when it may be started.
    return Module.initialize {
        ModuleState(link: SocketAgentLink(modulePath: csignet_module_path().map { String(cString: $0) }), mayStartAgent: AgentStart.allowedHere)
    }
}

func signet_C_Finalize(_ reserved: UnsafeMutableRawPointer?) -> CK_RV {
    guard reserved == nil else { return CKR_ARGUMENTS_BAD }
    return Module.finalize()
}

func signet_C_GetInfo(_ info: UnsafeMutablePointer<CK_INFO>?) -> CK_RV {
    withModule { _ in
        guard let info else { return CKR_ARGUMENTS_BAD }
        info.pointee.cryptokiVersion = CK_VERSION(major: 2, minor: 40)
        pad(&info.pointee.manufacturerID, "Signet")
        info.pointee.flags = 0
        pad(&info.pointee.libraryDescription, "Signet agent (signet-agent)")
        info.pointee.libraryVersion = version
        return CKR_OK
    }
}
