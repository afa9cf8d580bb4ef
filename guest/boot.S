/*
 * novakvm test guest: PVH entry (32-bit protected mode, paging off) and the
 * switch to 64-bit long mode.  See docs/arch-guest.md for the contract.
 *
 * Entry state (PVH boot ABI): CS flat 32-bit code, DS/ES/SS flat 32-bit data,
 * paging off, EBX = physical address of struct hvm_start_info.  No stack.
 */

#define XEN_ELFNOTE_PHYS32_ENTRY 18
#define MSR_EFER 0xC0000080

	.section .note.Xen, "a", @note
	.balign 4
	.long 4                        /* namesz: "Xen\0" */
	.long 8                        /* descsz: 64-bit address, like Linux */
	.long XEN_ELFNOTE_PHYS32_ENTRY /* type */
	.asciz "Xen"
	.balign 4
	.quad pvh_start32
	.balign 4

	.section .text.boot, "ax"
	.code32
	.globl pvh_start32
pvh_start32:
	cli
	cld
	movl %ebx, %esi                /* keep start_info; rep stos clobbers edi */

	/* Zero .bss (page tables and stack live there). */
	movl $__bss_start, %edi
	movl $__bss_end, %ecx
	subl %edi, %ecx
	xorl %eax, %eax
	rep stosb

	movl $boot_stack_top, %esp
	lgdt gdt_desc32

	/* PML4[0] -> PDPT; PDPT[0..3] -> 4 page directories of 2 MiB pages. */
	movl $pt_pdpt, %eax
	orl $0x3, %eax
	movl %eax, pt_pml4

	movl $pt_pd, %edi              /* 4 contiguous PDs = 2048 entries */
	xorl %ecx, %ecx
1:	movl %ecx, %eax
	shll $21, %eax                 /* low 32 bits of the 2 MiB frame */
	orl $0x83, %eax                /* present | writable | PS */
	cmpl $1536, %ecx               /* 3..4 GiB hole: uncached (PCD|PWT) */
	jb 2f
	orl $0x18, %eax
2:	movl %eax, (%edi,%ecx,8)
	movl $0, 4(%edi,%ecx,8)
	incl %ecx
	cmpl $2048, %ecx
	jb 1b

	movl $pt_pd, %eax
	xorl %ecx, %ecx
3:	movl %eax, %edx
	orl $0x3, %edx
	movl %edx, pt_pdpt(,%ecx,8)
	addl $4096, %eax
	incl %ecx
	cmpl $4, %ecx
	jb 3b

	/* PAE on, CR3, EFER.LME, then paging on. */
	movl %cr4, %eax
	orl $0x20, %eax
	movl %eax, %cr4
	movl $pt_pml4, %eax
	movl %eax, %cr3
	movl $MSR_EFER, %ecx
	rdmsr
	orl $0x100, %eax
	wrmsr
	movl %cr0, %eax
	orl $0x80000001, %eax
	movl %eax, %cr0
	ljmp $0x08, $long_entry

	.code64
long_entry:
	movw $0x10, %ax
	movw %ax, %ds
	movw %ax, %es
	movw %ax, %ss
	movw %ax, %fs
	movw %ax, %gs
	movq $boot_stack_top, %rsp
	movl %esi, %edi                /* arg0: start_info physical address */
	call guest_main
4:	cli
	hlt
	jmp 4b

	.section .rodata
	.balign 16
gdt:
	.quad 0x0000000000000000       /* null */
	.quad 0x00AF9A000000FFFF       /* 0x08: 64-bit code */
	.quad 0x00CF92000000FFFF       /* 0x10: flat data */
	.quad 0x00CF9A000000FFFF       /* 0x18: flat 32-bit code */
gdt_end:
gdt_desc32:
	.word gdt_end - gdt - 1
	.long gdt

	.section .bss
	.balign 4096
	.globl pt_pml4, pt_pdpt, pt_pd
pt_pml4:	.skip 4096
pt_pdpt:	.skip 4096
pt_pd:		.skip 4 * 4096
boot_stack:	.skip 16384
boot_stack_top:

	.section .note.GNU-stack, "", @progbits
