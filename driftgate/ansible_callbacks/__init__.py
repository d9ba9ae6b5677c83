"""Ansible callback plugins that driftgate enables for its own runs (loaded by
ansible-playbook from this folder, never imported by driftgate itself)."""
