"""High availability: a pg_auto_failover formation for development, demos and tests
(:mod:`.formation`), its timing (:mod:`.settings`), the ``pgportfolio ha`` commands
(:mod:`.command`) and the failover drill (:mod:`.drill`).

Test and demo tooling, like :mod:`pgportfolio.servers`: the client never imports it.
"""
