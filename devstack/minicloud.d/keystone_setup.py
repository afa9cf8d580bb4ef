#!/usr/bin/env python3
"""Create minicloud's service users and catalog in Keystone, idempotently.

Runs inside the minicloud venv after `keystone-manage bootstrap` (which made
the admin user, the admin project, the admin/member/reader roles, RegionOne
and the identity endpoints). Adds, like DevStack does:

- the `service` project and the `service` role;
- one user per service (nova, placement, glance, neutron) with the `admin`
  and `service` roles on the `service` project;
- the services compute, placement, image and network with public, internal
  and admin endpoints in the region.

One process instead of ~30 `openstack` CLI calls keeps a cold `up` fast.
Everything is looked up by name first, so a second run changes nothing.

Arguments come from the environment: OS_AUTH_URL, OS_PASSWORD (admin),
MINICLOUD_SERVICE_PASSWORD, MINICLOUD_REGION, and MINICLOUD_ENDPOINTS, a
JSON object {"compute": ["nova", "http://..."], ...}.
"""

import json
import os
import sys

from keystoneauth1 import session as ks_session
from keystoneauth1.identity import v3
from keystoneclient.v3 import client as ks_client


def find(manager, name, **kw):
    for item in manager.list(**kw):
        if item.name == name:
            return item
    return None


def ensure(manager, name, create_kw, **list_kw):
    item = find(manager, name, **list_kw)
    if item is None:
        item = manager.create(name=name, **create_kw)
        print("created %s %s" % (manager.resource_class.__name__, name))
    return item


def main():
    env = os.environ
    auth = v3.Password(
        auth_url=env["OS_AUTH_URL"],
        username="admin",
        password=env["OS_PASSWORD"],
        project_name="admin",
        user_domain_id="default",
        project_domain_id="default",
    )
    ks = ks_client.Client(session=ks_session.Session(auth=auth))
    region = env.get("MINICLOUD_REGION", "RegionOne")
    service_password = env["MINICLOUD_SERVICE_PASSWORD"]
    endpoints = json.loads(env["MINICLOUD_ENDPOINTS"])

    domain = ks.domains.get("default")
    project = ensure(ks.projects, "service", {"domain": domain,
                                              "description": "minicloud services"},
                     domain=domain)
    admin_role = find(ks.roles, "admin")
    if admin_role is None:
        sys.exit("keystone has no admin role: did keystone-manage bootstrap run?")
    service_role = ensure(ks.roles, "service", {})

    for user_name in ("nova", "placement", "glance", "neutron"):
        user = find(ks.users, user_name, domain=domain)
        if user is None:
            user = ks.users.create(name=user_name, domain=domain,
                                   password=service_password,
                                   default_project=project)
            print("created user %s" % user_name)
        else:
            # keep the password in step with the config files
            ks.users.update(user, password=service_password)
        for role in (admin_role, service_role):
            ks.roles.grant(role, user=user, project=project)

    for stype, (sname, url) in endpoints.items():
        svc = None
        for s in ks.services.list(type=stype):
            svc = s
            break
        if svc is None:
            svc = ks.services.create(name=sname, type=stype,
                                     description="minicloud %s" % sname)
            print("created service %s (%s)" % (sname, stype))
        have = {e.interface: e for e in ks.endpoints.list(service=svc)
                if e.region_id == region or getattr(e, "region", None) == region}
        for interface in ("public", "internal", "admin"):
            ep = have.get(interface)
            if ep is None:
                ks.endpoints.create(service=svc, url=url, interface=interface,
                                    region=region)
            elif ep.url != url:
                ks.endpoints.update(ep, url=url)
    print("keystone: service project, users and catalog in place")


if __name__ == "__main__":
    main()
