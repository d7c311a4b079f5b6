"""Broker mode: one process owns the chip(s) and serves PKCS#11 to many over p11-kit's RPC.

Owns: ``atecc broker`` (:mod:`broker.cli`), the accept loop and connection life cycle
(:mod:`broker.server`), the peer-credential gate (:mod:`broker.peers`), the listening socket and
socket activation (:mod:`broker.listen`), p11-kit's managed module and the C relay in front of its
RPC server (:mod:`broker.relay`, C side ``native/broker_relay.c``), and ``--check``
(:mod:`broker.check`).

Applications load p11-kit's small C client module instead of ``libatecc_pkcs11.so``, so no Python
starts in them; the broker loads the module once, through p11-kit, and keeps it warm.

Must not: implement PKCS#11 (the module does, unchanged) or talk to the chip itself (the module
does, through the driver). Arrows: broker → cryptoki (only ``cryptoki._paths`` and the built
module) and broker → atecc (slot files, for ``--check``); nothing imports broker (the ``atecc``
command finds ``broker.cli`` through the ``atecc.commands`` entry point).
"""
