"""Provisioning a blank ATECC608: a configuration template, written, checked, locked, keys
generated, the data zone locked, and the slot file that makes the module serve the new key.

* :mod:`atecc.provision.template` -- templates (built-in ``tls-identity``, a hex image or a JSON
  slot table from a file), their checks, the human diff;
* :mod:`atecc.provision.plan` -- the commands, in an order a power loss at any point cannot
  spoil, sent one at a time or listed by a dry run;
* :mod:`atecc.provision.slots` -- the slot file of the provisioned chip.

The ``atecc provision`` command (issuing a certificate from a CA as an optional last step) is
the fleet layer's (:mod:`fleet.provision`); nothing here needs the token or a CA.
"""
